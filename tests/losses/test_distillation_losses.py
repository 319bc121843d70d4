"""kdkeras terms as keras.distillation losses: one fit step of Keras's own Distiller."""

import keras
import numpy as np
import pytest
from keras import layers

from kdkeras import losses
from kdkeras.losses.distillation_losses import (GramDistillation, KLDistillation, TapBundle,
                                                with_tap_bundle)

RNG = np.random.default_rng(6)
X = RNG.normal(size=(4, 8, 8, 3)).astype("float32")
Y = np.array([0, 1, 2, 1], "int32")


def _net(name, seed, width=4):
    """8x8x3 -> tap_stage1 8x8xw -> tap_stage2 4x4xw -> tap_stage3 2x2xw -> 3 logits."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((8, 8, 3))
    x = inp
    for s, stride in enumerate((1, 2, 2), start=1):
        x = layers.Conv2D(width, 3, strides=stride, padding="same", activation="relu",
                          name=f"stage{s}_conv")(x)
        x = layers.Identity(name=f"tap_stage{s}")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inp, layers.Dense(3, name="logits")(x), name=name)


def _outputs(model):
    feats = keras.Model(model.input, [model.output] + [model.get_layer(f"tap_stage{s}").output
                                                       for s in (1, 2, 3)])
    return [np.asarray(o) for o in feats(X)]


def test_with_tap_bundle_keeps_logits_and_weights():
    student = _net("student", 1)
    bundled = with_tap_bundle(student)
    np.testing.assert_allclose(np.asarray(bundled(X)), np.asarray(student(X)), rtol=1e-6)
    assert len(bundled.trainable_weights) == len(student.trainable_weights)
    assert all(a is b for a, b in zip(bundled.trainable_weights, student.trainable_weights))
    bundle = bundled.get_layer("kd_taps")
    assert isinstance(bundle, TapBundle)
    assert [tuple(t.shape[1:]) for t in bundle.output] == [(3,), (8, 8, 4), (4, 4, 4), (2, 2, 4)]


def test_with_tap_bundle_rejects_models_without_taps():
    inp = keras.Input((3,))
    with pytest.raises(ValueError, match="tap_"):
        with_tap_bundle(keras.Model(inp, layers.Dense(2)(inp)))


def test_kl_distillation_is_the_batch_mean_kl_times_t2():
    t, s = RNG.normal(size=(4, 3)).astype("float32"), RNG.normal(size=(4, 3)).astype("float32")
    kl = np.asarray(losses.kl_divergence(t, s, 2.0)).mean()
    assert float(KLDistillation(2.0).compute_loss(t, s)) == pytest.approx(4.0 * kl, rel=1e-5)
    assert float(KLDistillation(2.0, scale_by_t2=False).compute_loss(t, s)) == pytest.approx(kl, rel=1e-5)


def test_gram_distillation_is_the_batch_mean_gram_loss():
    t_out, s_out = _outputs(_net("teacher", 0)), _outputs(_net("student", 1))
    want = np.asarray(losses.gram_loss(t_out[1:], s_out[1:], losses.cross_layer_pairs(range(3), 2),
                                       reduction="sum", weight=0.5, pool="max")).mean()
    got = GramDistillation(depth=2, reduction="sum", weight=0.5, pool="max").compute_loss(t_out, s_out)
    assert float(got) == pytest.approx(want, rel=1e-5)


def test_one_fit_step_of_keras_distiller():
    teacher, student = _net("teacher", 0), _net("student", 1)
    before = [np.array(w) for w in student.get_weights()]
    t_before = [np.array(w) for w in teacher.get_weights()]
    distiller = keras.distillation.Distiller(
        teacher=with_tap_bundle(teacher), student=with_tap_bundle(student),
        distillation_losses=[KLDistillation(), GramDistillation(depth=2)],
        distillation_loss_weights=[1.0, 1.0], student_loss_weight=0.5)
    distiller.compile(optimizer=keras.optimizers.SGD(0.1),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      jit_compile=True)
    history = distiller.fit(X, Y, batch_size=4, epochs=1, verbose=0)
    logs = {k: v[-1] for k, v in history.history.items()}
    assert np.isfinite(logs["distillation_loss"]) and logs["distillation_loss"] > 0
    assert np.isfinite(logs["total_loss"])
    # the wrapped student's layers are the original's: the original is trained
    assert any(not np.allclose(a, b) for a, b in zip(before, student.get_weights()))
    assert all(np.array_equal(a, b) for a, b in zip(t_before, teacher.get_weights()))


def test_gram_distillation_needs_bundled_models():
    with pytest.raises(ValueError, match="with_tap_bundle"):
        keras.distillation.Distiller(teacher=_net("teacher", 0), student=_net("student", 1),
                                     distillation_losses=GramDistillation(depth=1))


def test_gram_distillation_rejects_a_layer_that_is_not_a_bundle():
    with pytest.raises(ValueError, match="not a TapBundle"):
        keras.distillation.Distiller(teacher=_net("teacher", 0), student=_net("student", 1),
                                     distillation_losses=GramDistillation(tap_layer_name="tap_stage3"))


def test_gram_distillation_rejects_a_depth_the_taps_cannot_give():
    with pytest.raises(ValueError, match="depth"):
        keras.distillation.Distiller(teacher=with_tap_bundle(_net("teacher", 0)),
                                     student=with_tap_bundle(_net("student", 1)),
                                     distillation_losses=GramDistillation(depth=3))


@pytest.mark.parametrize("loss", [KLDistillation(3.0, scale_by_t2=False),
                                  GramDistillation(depth=(2,), reduction="sum", weight=0.1, pool="max")])
def test_config_round_trip(loss):
    config = keras.saving.serialize_keras_object(loss)
    restored = keras.saving.deserialize_keras_object(config)
    assert type(restored) is type(loss) and restored.get_config() == loss.get_config()


def test_bad_wrapper_arguments():
    with pytest.raises(ValueError, match="temperature"):
        KLDistillation(0.0)
    with pytest.raises(ValueError, match="reduction"):
        GramDistillation(reduction="batchmean")
    with pytest.raises(ValueError, match="pool"):
        GramDistillation(pool="min")
