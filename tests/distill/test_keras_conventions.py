"""The Distiller follows Keras's conventions: compile(metrics=...) is honoured on the
student's logits, compile(loss=...) is refused, ModelCheckpoint of weights works and of
the whole model is refused before training; a NaN/Inf loss term stops fit by default,
naming the term, with no NaN student left behind."""

import keras
import numpy as np
import pytest

from kdkeras.distill import Distiller, method_config
from kdkeras.distill.nonfinite import NonFiniteLossError

NUM_CLASSES = 6


def _models(seed=0):
    from kdkeras import models

    keras.utils.set_random_seed(seed)
    student = models.get("resnet8", num_classes=NUM_CLASSES, input_shape=(8, 8, 3))
    teacher = models.get("resnet8", num_classes=NUM_CLASSES, input_shape=(8, 8, 3))
    return student, teacher


def _data(n=8, scale=1.0):
    rng = np.random.default_rng(0)
    x = (scale * rng.normal(size=(n, 8, 8, 3))).astype("float32")
    y = rng.integers(0, NUM_CLASSES, size=n).astype("int32")
    return x, y


def test_compiled_top5_metric_is_logged_and_computed_on_the_student_logits():
    student, teacher = _models()
    d = Distiller(student, [teacher], method_config("ours"))
    d.compile(optimizer=keras.optimizers.SGD(0.0),  # lr 0: the student is not changed
              metrics=[keras.metrics.SparseTopKCategoricalAccuracy(k=2, name="top2")])
    x, y = _data()
    history = d.fit(x, y, batch_size=8, epochs=1, verbose=0, validation_data=(x, y)).history

    def top2(logits):  # by hand: the label is among the 2 largest logits
        best = np.argsort(np.asarray(logits), axis=1)[:, -2:]
        return np.mean([label in row for label, row in zip(y, best)])

    # Validation: the student in inference mode (after the step's BatchNorm update).
    expected_val = top2(student.predict(x, verbose=0))
    assert history["val_top2"][0] == pytest.approx(expected_val)
    assert d.evaluate(x, y, return_dict=True, verbose=0)["top2"] == pytest.approx(expected_val)
    # Training: the one batch of all 8 in training mode (BatchNorm on batch statistics).
    assert history["top2"][0] == pytest.approx(top2(student(x, training=True)))


def test_compile_refuses_a_loss_it_would_not_use():
    student, teacher = _models()
    d = Distiller(student, [teacher], method_config("ours"))
    with pytest.raises(ValueError, match="compile\\(loss=...\\).*Received: loss='mse'"):
        d.compile(optimizer="sgd", loss="mse")


def test_model_checkpoint_of_weights_round_trips(tmp_path):
    student, teacher = _models()
    d = Distiller(student, [teacher], method_config("ours"))
    d.compile(optimizer=keras.optimizers.SGD(0.01))
    x, y = _data()
    path = tmp_path / "ckpt.weights.h5"
    d.fit(x, y, batch_size=4, epochs=1, verbose=0,
          callbacks=[keras.callbacks.ModelCheckpoint(str(path), save_weights_only=True)])
    assert path.stat().st_size > 0
    fresh_student, fresh_teacher = _models(seed=1)
    restored = Distiller(fresh_student, [fresh_teacher], method_config("ours"))
    restored.load_weights(path)
    for a, b in zip(restored.student.get_weights(), student.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["m.keras", "m.weights.h5"])
def test_model_checkpoint_of_the_whole_distiller_is_refused_before_training(tmp_path, name):
    student, teacher = _models()
    d = Distiller(student, [teacher], method_config("ours"))
    d.compile(optimizer=keras.optimizers.SGD(0.01))
    before = [w.copy() for w in student.get_weights()]
    x, y = _data()
    callback = keras.callbacks.ModelCheckpoint(str(tmp_path / name)) if name.endswith(".keras") \
        else keras.callbacks.ModelCheckpoint(str(tmp_path / name), save_weights_only=False)
    with pytest.raises(ValueError, match="save_weights_only=True"):
        d.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[callback])
    assert list(tmp_path.iterdir()) == []   # no 0-byte file
    for a, b in zip(student.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_a_diverging_fit_stops_naming_the_term_and_keeps_a_finite_student():
    """Inputs of 1e6 and a learning rate of 1 blow the step up within an epoch."""
    student, teacher = _models()
    d = Distiller(student, [teacher], method_config("ours"))
    d.compile(optimizer=keras.optimizers.SGD(1.0))
    before = [w.copy() for w in student.get_weights()]
    x, y = _data(n=16, scale=1e6)
    with pytest.raises(NonFiniteLossError, match=r"Non-finite loss term '\w+' \(\w+=(nan|inf)\) "
                                                 r"at epoch 1, step \d+ of 4") as err:
        d.fit(x, y, batch_size=4, epochs=3, verbose=0)
    assert err.value.epoch == 1
    assert set(err.value.terms) <= {"ce", "kl", "feature", "loss", "ce_grad_norm", "kd_grad_norm"}
    # Put back: the weights of the start of epoch 1, all finite.
    for a, b in zip(student.get_weights(), before):
        np.testing.assert_array_equal(a, b)
