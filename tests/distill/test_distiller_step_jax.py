"""The Distiller's stateless JAX step against a hand-worked update, and a whole JAX run.

Runs under KERAS_BACKEND=jax only (`test_jax_backend.py` starts that pytest
process from the TensorFlow suite); under any other backend it is skipped.
"""

import json
import math

import keras
import numpy as np
import pytest
from keras import layers

if keras.backend.backend() != "jax":
    pytest.skip("JAX-backend tests (run by test_jax_backend.py under KERAS_BACKEND=jax)",
                allow_module_level=True)

import jax  # noqa: E402

from kdkeras.distill import Distiller, method_config  # noqa: E402

B, D, C = 4, 3, 5
LOGS_WITH_KD = {"loss", "ce", "kl", "feature", "beta", "tau", "ce_grad_norm", "kd_grad_norm",
                "kd_scale", "accuracy"}


def _linear(name, weights):
    inp = keras.Input((D,))
    out = layers.Dense(C, use_bias=False, name="logits")(inp)
    model = keras.Model(inp, out, name=name)
    model.get_layer("logits").set_weights([weights])
    return model


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _state(d):
    if not d.optimizer.built:
        d.optimizer.build(d.trainable_variables)
    return tuple([v.value for v in group] for group in (
        d.trainable_variables, d.non_trainable_variables, d.optimizer.variables,
        d.metrics_variables))


@pytest.mark.parametrize("kd_smaller, epoch, weight_decay",
                         [(True, 0.0, 0.0), (True, 3.0, 0.01), (False, 1.0, 0.0)])
def test_compiled_stateless_step_equals_the_hand_computed_update(kd_smaller, epoch, weight_decay):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(B, D)).astype("float32")
    y = np.array([0, 1, 2, 3], dtype="int32")
    w_s = rng.normal(scale=0.5, size=(D, C)).astype("float32")
    w_t = rng.normal(scale=0.5, size=(D, C)).astype("float32")
    if kd_smaller:   # a teacher close to the student: ‖∇KD‖ < ‖∇CE‖, β applies
        w_t = w_s + 0.1 * w_t
    else:            # a confident student on its labels, a teacher that disagrees
        w_s = 4 * w_s
        y = np.argmax(x @ w_s, axis=1).astype("int32")
        w_t = -w_s
    lr = 0.1
    # By hand: z = xW, ∇_W CE = xᵀ(p_S − onehot)/B, ∇_W KL(p_T‖p_S) = xᵀ(p_S − p_T)/B.
    p_s, p_t = _softmax(x @ w_s), _softmax(x @ w_t)
    g_ce = x.T @ (p_s - np.eye(C)[y]) / B
    g_kd = x.T @ (p_s - p_t) / B
    n_ce, n_kd = np.linalg.norm(g_ce), np.linalg.norm(g_kd)
    beta = 1 / (1 + math.exp(-(n_ce / n_kd) + epoch))
    scale = beta if n_kd < n_ce else 1.0
    expected = w_s - lr * (g_ce + weight_decay * w_s + scale * g_kd)

    student, teacher = _linear("student", w_s), _linear("teacher", w_t)
    config = method_config("ours", feature_loss=None, use_kl=True, beta_mode="paper")
    d = Distiller(student, [teacher], config, weight_decay=weight_decay)
    d.compile(optimizer=keras.optimizers.SGD(learning_rate=lr))
    d.epoch.assign(epoch)
    state = _state(d)
    logs, new_state = jax.jit(d.train_step)(state, (x, y))

    # Stateless: the variables are untouched; the new values come back in the state.
    np.testing.assert_array_equal(student.get_layer("logits").get_weights()[0], w_s)
    np.testing.assert_allclose(np.asarray(new_state[0][0]), expected, rtol=1e-5, atol=1e-6)
    assert set(logs) == LOGS_WITH_KD
    assert float(logs["ce_grad_norm"]) == pytest.approx(n_ce, rel=1e-5)
    assert float(logs["kd_grad_norm"]) == pytest.approx(n_kd, rel=1e-5)
    assert float(logs["beta"]) == pytest.approx(beta, rel=1e-5)
    assert float(logs["kd_scale"]) == pytest.approx(scale, rel=1e-5)
    assert (n_kd < n_ce) == kd_smaller
    # The teacher's weights go through the step unchanged.
    t_index = next(i for i, v in enumerate(d.non_trainable_variables) if v is teacher.weights[0])
    np.testing.assert_array_equal(np.asarray(new_state[1][t_index]), w_t)


def _linear_case(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, D)).astype("float32")
    y = np.array([0, 1, 2, 3], dtype="int32")
    w_s = rng.normal(scale=0.5, size=(D, C)).astype("float32")
    w_t = w_s + 0.1 * rng.normal(scale=0.5, size=(D, C)).astype("float32")
    p_s, p_t = _softmax(x @ w_s), _softmax(x @ w_t)
    g_ce = x.T @ (p_s - np.eye(C)[y]) / B
    g_kd = x.T @ (p_s - p_t) / B
    return x, y, w_s, w_t, g_ce, g_kd


def test_beta_off_takes_one_gradient_of_the_whole_loss():
    x, y, w_s, w_t, g_ce, g_kd = _linear_case()
    d = Distiller(_linear("s", w_s), [_linear("t", w_t)],
                  method_config("ours", feature_loss=None, beta_mode="off"), weight_decay=0.0)
    d.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1))
    logs, new_state = jax.jit(d.train_step)(_state(d), (x, y))
    np.testing.assert_allclose(np.asarray(new_state[0][0]), w_s - 0.1 * (g_ce + g_kd),
                               rtol=1e-5, atol=1e-6)
    # As the TensorFlow step logs it: the one gradient's norm, no τ, β = scale = 1.
    assert float(logs["ce_grad_norm"]) == pytest.approx(np.linalg.norm(g_ce + g_kd), rel=1e-5)
    assert (float(logs["tau"]), float(logs["beta"]), float(logs["kd_scale"])) == (0.0, 1.0, 1.0)


def test_loss_scale_optimizer_gives_the_unscaled_update():
    x, y, w_s, w_t, g_ce, g_kd = _linear_case()
    n_ce, n_kd = np.linalg.norm(g_ce), np.linalg.norm(g_kd)
    beta = 1 / (1 + math.exp(-(n_ce / n_kd)))
    assert n_kd < n_ce
    d = Distiller(_linear("s", w_s), [_linear("t", w_t)],
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
    x, y, w_s, w_t, _, _ = _linear_case()
    d = Distiller(_linear("s", w_s), [_linear("t", w_t)], method_config("hinton"))
    d.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1))
    d.nonfinite_skip = object()  # what NonFiniteGuard(policy="skip") sets
    with pytest.raises(NotImplementedError, match="on_nonfinite='stop'"):
        d.train_step(_state(d), (x, y))


def test_direct_call_assigns_like_the_tensorflow_step():
    rng = np.random.default_rng(1)
    w_s = rng.normal(size=(D, C)).astype("float32")
    x = rng.normal(size=(B, D)).astype("float32")
    d = Distiller(_linear("s", w_s), [], method_config("student"), weight_decay=0.0)
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
    from kdkeras.training.jax_runs import distill_arrays

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
    results = distill_arrays(config, data)

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
