"""With β off the TF step takes one gradient of the whole loss: the update must not change.

Hinton KD on a linear student and teacher, against the update computed by hand:
z = xW, ∇_W CE = xᵀ(p_S − onehot)/B and ∇_W KL(p_T^T ‖ p_S^T) = xᵀ(p_S^T − p_T^T)/(B·T),
with the "hinton" weights (1 − α)·CE + α·T²·KL, α = 0.9, T = 4, and weight decay.
"""

import keras
import numpy as np
import pytest
from keras import layers

from kdkeras.distill import Distiller, method_config

B, D, C = 4, 3, 5


def _linear(name, weights):
    inp = keras.Input((D,))
    model = keras.Model(inp, layers.Dense(C, use_bias=False, name="logits")(inp), name=name)
    model.get_layer("logits").set_weights([weights])
    return model


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("compiled", [False, True])
def test_hinton_step_equals_the_hand_computed_update(compiled):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(B, D)).astype("float32")
    y = np.array([0, 1, 2, 3], dtype="int32")
    w_s = rng.normal(scale=0.5, size=(D, C)).astype("float32")
    w_t = rng.normal(scale=0.5, size=(D, C)).astype("float32")
    lr, wd, t, alpha = 0.1, 0.01, 4.0, 0.9
    g_ce = x.T @ (_softmax(x @ w_s) - np.eye(C)[y]) / B
    g_kl = x.T @ (_softmax(x @ w_s / t) - _softmax(x @ w_t / t)) / (B * t)
    grad = (1 - alpha) * g_ce + alpha * t * t * g_kl + wd * w_s
    expected = w_s - lr * grad

    student = _linear("student", w_s)
    d = Distiller(student, [_linear("teacher", w_t)], method_config("hinton"), weight_decay=wd)
    d.compile(optimizer=keras.optimizers.SGD(learning_rate=lr))
    logs = d.train_on_batch(x, y, return_dict=True) if compiled else d.train_step((x, y))
    np.testing.assert_allclose(student.get_layer("logits").get_weights()[0], expected,
                               rtol=1e-5, atol=1e-6)
    # One gradient: its norm is logged as ce_grad_norm; no split, no τ.
    assert float(logs["ce_grad_norm"]) == pytest.approx(np.linalg.norm(grad - wd * w_s), rel=1e-4)
    assert float(logs["kd_grad_norm"]) == 0.0 and float(logs["tau"]) == 0.0
    assert float(logs["beta"]) == 1.0 and float(logs["kd_scale"]) == 1.0
