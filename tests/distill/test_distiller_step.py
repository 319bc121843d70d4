"""One Distiller step against a hand-worked update, and what a step may and may not touch."""

import keras
import numpy as np
import pytest
from keras import layers

from hand_worked_step import BETA_STEP_CASES, C, D, BetaStep, linear
from kdkeras.distill import Distiller, method_config


@pytest.mark.parametrize("kd_smaller, epoch, weight_decay", BETA_STEP_CASES)
def test_step_equals_the_hand_computed_update(kd_smaller, epoch, weight_decay):
    step = BetaStep(kd_smaller, epoch, weight_decay)
    logs = step.distiller.train_step((step.x, step.y))
    step.check(logs, step.student.get_layer("logits").get_weights()[0])


def test_teachers_stay_bit_identical_while_student_and_adapters_move():
    from kdkeras import models

    student = models.get("resnet8", num_classes=10)
    teachers = [models.get("resnet8", num_classes=10) for _ in range(2)]
    config = method_config("ours", always_adapt=True)
    # No weight decay: the adapters must move by the distillation gradient alone.
    d = Distiller(student, teachers, config, weight_decay=0.0)
    d.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1))
    before_t = [[w.copy() for w in t.get_weights()] for t in teachers]
    before_s = [w.copy() for w in student.get_weights()]
    before_a = [a.get_weights()[0].copy() for a in d.adapters]
    assert len(d.adapters) == 2 * len(d.student_tap_names)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 32, 32, 3)).astype("float32")
    y = np.array([0, 1, 2, 3], dtype="int32")
    logs = d.train_step((x, y))
    assert all(np.isfinite(float(v)) for v in logs.values())
    for t, ws in zip(teachers, before_t):
        for a, b in zip(t.get_weights(), ws):
            np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(student.get_weights(), before_s))
    assert all(not np.array_equal(a.get_weights()[0], b) for a, b in zip(d.adapters, before_a))


def test_saved_student_predicts_like_before_and_holds_no_teacher(tmp_path):
    from kdkeras import models

    student = models.get("resnet8", num_classes=10)
    d = Distiller(student, [models.get("resnet32", num_classes=10)], method_config("ours"))
    d.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05))
    x = np.random.default_rng(2).normal(size=(4, 32, 32, 3)).astype("float32")
    d.train_step((x, np.arange(4, dtype="int32")))
    path = tmp_path / "student.keras"
    d.student.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), student.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)
    assert loaded.count_params() == student.count_params()
    assert not any("adapter" in l.name for l in loaded.layers)


def test_mismatched_classes_is_a_clear_error():
    student = linear("student", np.zeros((D, C), "float32"))
    inp = keras.Input((D,))
    teacher = keras.Model(inp, layers.Dense(C + 1)(inp), name="teacher")
    with pytest.raises(ValueError, match="predicts 6 classes but the student .* predicts 5"):
        Distiller(student, [teacher], method_config("hinton"))


def test_mismatched_tap_counts_is_a_clear_error():
    from kdkeras import models

    student = models.get("resnet8", num_classes=10)
    teacher = models.get("resnet32", num_classes=10)
    with pytest.raises(ValueError, match="same number of taps"):
        Distiller(student, [teacher], method_config("ours"),
                  teacher_taps=models.tap_names(teacher)[:2])


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(ValueError, match="Unknown method 'fitnet'. Valid methods: student, hinton"):
        method_config("fitnet")


def test_kd_method_without_teachers_is_a_clear_error():
    with pytest.raises(ValueError, match="distils from teachers, but none were given"):
        Distiller(linear("s", np.zeros((D, C), "float32")), [], method_config("hinton"))
