"""The Distiller's stateless JAX step against a hand-worked update, and a whole JAX run.

Runs under KERAS_BACKEND=jax only (`test_jax_backend.py` starts that pytest
process from the TensorFlow suite); under any other backend it is skipped.
"""

import json
import math

import keras
import numpy as np
import pytest

if keras.backend.backend() != "jax":
    pytest.skip("JAX-backend tests (run by test_jax_backend.py under KERAS_BACKEND=jax)",
                allow_module_level=True)

import jax  # noqa: E402

from hand_worked_step import (B, BETA_STEP_CASES, C, D, BetaStep, linear,  # noqa: E402
                              linear_case)
from kdkeras.distill import Distiller, method_config  # noqa: E402

LOGS_WITH_KD = {"loss", "ce", "kl", "feature", "beta", "tau", "ce_grad_norm", "kd_grad_norm",
                "kd_scale", "accuracy"}


def _state(d):
    if not d.optimizer.built:
        d.optimizer.build(d.trainable_variables)
    return tuple([v.value for v in group] for group in (
        d.trainable_variables, d.non_trainable_variables, d.optimizer.variables,
        d.metrics_variables))


@pytest.mark.parametrize("kd_smaller, epoch, weight_decay", BETA_STEP_CASES)
def test_compiled_stateless_step_equals_the_hand_computed_update(kd_smaller, epoch, weight_decay):
    step = BetaStep(kd_smaller, epoch, weight_decay)
    d = step.distiller
    logs, new_state = jax.jit(d.train_step)(_state(d), (step.x, step.y))

    # Stateless: the variables are untouched; the new values come back in the state.
    np.testing.assert_array_equal(step.student.get_layer("logits").get_weights()[0], step.w_s)
    step.check(logs, np.asarray(new_state[0][0]))
    assert set(logs) == LOGS_WITH_KD
    # The teacher's weights go through the step unchanged.
    t_index = next(i for i, v in enumerate(d.non_trainable_variables)
                   if v is step.teacher.weights[0])
    np.testing.assert_array_equal(np.asarray(new_state[1][t_index]), step.w_t)


def test_beta_off_takes_one_gradient_of_the_whole_loss():
    x, y, w_s, w_t, g_ce, g_kd = linear_case()
    d = Distiller(linear("s", w_s), [linear("t", w_t)],
                  method_config("ours", feature_loss=None, beta_mode="off"), weight_decay=0.0)
    d.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1))
    logs, new_state = jax.jit(d.train_step)(_state(d), (x, y))
    np.testing.assert_allclose(np.asarray(new_state[0][0]), w_s - 0.1 * (g_ce + g_kd),
                               rtol=1e-5, atol=1e-6)
    # As the TensorFlow step logs it: the one gradient's norm, no τ, β = scale = 1.
    assert float(logs["ce_grad_norm"]) == pytest.approx(np.linalg.norm(g_ce + g_kd), rel=1e-5)
    assert (float(logs["tau"]), float(logs["beta"]), float(logs["kd_scale"])) == (0.0, 1.0, 1.0)


def test_loss_scale_optimizer_gives_the_unscaled_update():
    x, y, w_s, w_t, g_ce, g_kd = linear_case()
    n_ce, n_kd = np.linalg.norm(g_ce), np.linalg.norm(g_kd)
    beta = 1 / (1 + math.exp(-(n_ce / n_kd)))
    assert n_kd < n_ce
    d = Distiller(linear("s", w_s), [linear("t", w_t)],
                  method_config("ours", feature_loss=None), weight_decay=0.0)
    d.compile(optimizer=keras.optimizers.LossScaleOptimizer(
        keras.optimizers.SGD(learning_rate=0.1), initial_scale=2.0 ** 10))
    logs, new_state = jax.jit(d.train_step)(_state(d), (x, y))
    # τ and β see the true gradients, and the applied update is the unscaled one.
    assert float(logs["ce_grad_norm"]) == pytest.approx(n_ce, rel=1e-5)
    assert float(logs["beta"]) == pytest.approx(beta, rel=1e-5)
    np.testing.assert_allclose(np.asarray(new_state[0][0]), w_s - 0.1 * (g_ce + beta * g_kd),
                               rtol=1e-5, atol=1e-6)


def test_skipping_non_finite_steps_is_refused_on_jax():
    x, y, w_s, w_t, _, _ = linear_case()
    d = Distiller(linear("s", w_s), [linear("t", w_t)], method_config("hinton"))
    with pytest.raises(ValueError, match="TensorFlow train step only.*use on_nonfinite='stop'"):
        d.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), on_nonfinite="skip")


def test_direct_call_assigns_like_the_tensorflow_step():
    rng = np.random.default_rng(1)
    w_s = rng.normal(size=(D, C)).astype("float32")
    x = rng.normal(size=(B, D)).astype("float32")
    d = Distiller(linear("s", w_s), [], method_config("student"), weight_decay=0.0)
    d.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1))
    logs = d.train_step((x, np.arange(B, dtype="int32")))
    # A run without teachers logs only what it has.
    assert set(logs) == {"loss", "ce", "ce_grad_norm", "accuracy"}
    assert not np.array_equal(d.student.get_weights()[0], w_s)
    assert d.optimizer.iterations.numpy() == 1


def test_one_epoch_run_on_arrays_end_to_end(tmp_path):
    """The JAX path of a run: Pillow-decoded folder -> ArrayBatches -> compiled fit -> results."""
    from PIL import Image

    from kdkeras import models
    from kdkeras.data.numpy_data import load_image_arrays
    from kdkeras.training.config import DistillRunConfig, resolve_config
    from kdkeras.training.runs import distill_model

    rng = np.random.default_rng(0)
    # 12 + 12 images in batches of 4: one batch shape, one compilation per step function.
    for split, per_class in (("train", 4), ("test", 4)):
        for c in ("cat", "dog", "frog"):
            folder = tmp_path / "images" / split / c
            folder.mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:04d}.png")
    data = load_image_arrays(tmp_path / "images", name="tiny", cache=tmp_path / "tiny.npz")
    teacher = models.get("resnet8", num_classes=3, input_shape=(8, 8, 3))
    teacher_path = tmp_path / "teacher.keras"
    teacher.save(teacher_path)
    config = resolve_config(DistillRunConfig, "smoke", dataset="image_folder", model="resnet8",
                            teacher_model="resnet8", teachers=(str(teacher_path),),
                            batch_size=4, train_subset=None, test_subset=None,
                            workdir=str(tmp_path / "run"), verbose=0)
    results = distill_model(config, data)

    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["provenance"]["machine"]["backend"] == "jax"
    assert saved["provenance"]["num_train"] == 12
    assert 0.0 <= results["test_accuracy"] <= 1.0
    row = results["history"][0]
    assert LOGS_WITH_KD | {"val_accuracy", "val_loss"} <= set(row)
    assert all(np.isfinite(row[k]) for k in LOGS_WITH_KD)
    assert (tmp_path / "run" / "checkpoints" / "epoch-0001.weights.h5").exists()
    student = keras.saving.load_model(tmp_path / "run" / "student.keras")
    assert student.count_params() == models.get("resnet8", num_classes=3,
                                                 input_shape=(8, 8, 3)).count_params()
