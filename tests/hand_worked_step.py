"""A Distiller step worked by hand, shared by the TensorFlow and JAX step tests.

A linear student and teacher (logits z = xW, no bias) on B=4 examples of D=3
features and C=5 classes, where the gradients have closed forms:
∇_W CE = xᵀ(p_S − onehot)/B and ∇_W KL(p_T‖p_S) = xᵀ(p_S − p_T)/B.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from keras import layers

from kdkeras.distill import Distiller, method_config

B, D, C = 4, 3, 5
LEARNING_RATE = 0.1
# (kd_smaller, epoch, weight_decay): both branches of the β rule, one with weight decay.
BETA_STEP_CASES = [(True, 0.0, 0.0), (True, 3.0, 0.01), (False, 1.0, 0.0)]


def linear(name: str, weights: np.ndarray) -> keras.Model:
    inp = keras.Input((D,))
    out = layers.Dense(C, use_bias=False, name="logits")(inp)
    model = keras.Model(inp, out, name=name)
    model.get_layer("logits").set_weights([weights])
    return model


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def linear_case(kd_smaller: bool = True, seed: int = 0):
    """(x, y, w_student, w_teacher, ∇_W CE, ∇_W KL) of a linear student and teacher.

    `kd_smaller`: a teacher close to the student, so ‖∇KD‖ < ‖∇CE‖ and β
    applies; otherwise a confident student on its labels and a teacher that
    disagrees, so ‖∇KD‖ ≥ ‖∇CE‖.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, D)).astype("float32")
    y = np.array([0, 1, 2, 3], dtype="int32")
    w_s = rng.normal(scale=0.5, size=(D, C)).astype("float32")
    w_t = rng.normal(scale=0.5, size=(D, C)).astype("float32")
    if kd_smaller:
        w_t = w_s + 0.1 * w_t
    else:
        w_s = 4 * w_s
        y = np.argmax(x @ w_s, axis=1).astype("int32")
        w_t = -w_s
    p_s, p_t = softmax(x @ w_s), softmax(x @ w_t)
    g_ce = x.T @ (p_s - np.eye(C)[y]) / B
    g_kd = x.T @ (p_s - p_t) / B
    return x, y, w_s, w_t, g_ce, g_kd


class BetaStep:
    """One step of `ours` (KL only, the paper's β rule) on a linear case, worked by hand.

    `distiller` is compiled at `epoch` and ready for its step, which each
    backend takes its own way; `check(logs, new_kernel)` compares the step's
    logs and the student's new kernel with the NumPy values.
    """

    def __init__(self, kd_smaller: bool, epoch: float, weight_decay: float):
        self.x, self.y, self.w_s, self.w_t, g_ce, g_kd = linear_case(kd_smaller)
        self.kd_smaller = kd_smaller
        n_ce, n_kd = np.linalg.norm(g_ce), np.linalg.norm(g_kd)
        beta = 1 / (1 + math.exp(-(n_ce / n_kd) + epoch))
        scale = beta if n_kd < n_ce else 1.0
        self.expected_logs = {"ce_grad_norm": n_ce, "kd_grad_norm": n_kd, "beta": beta,
                              "kd_scale": scale}
        self.expected_kernel = self.w_s - LEARNING_RATE * (g_ce + weight_decay * self.w_s
                                                           + scale * g_kd)
        self.student, self.teacher = linear("student", self.w_s), linear("teacher", self.w_t)
        config = method_config("ours", feature_loss=None, use_kl=True, beta_mode="paper")
        self.distiller = Distiller(self.student, [self.teacher], config,
                                   weight_decay=weight_decay)
        self.distiller.compile(optimizer=keras.optimizers.SGD(learning_rate=LEARNING_RATE))
        self.distiller.epoch.assign(epoch)

    def check(self, logs, new_kernel) -> None:
        np.testing.assert_allclose(new_kernel, self.expected_kernel, rtol=1e-5, atol=1e-6)
        for key, value in self.expected_logs.items():
            assert float(logs[key]) == pytest.approx(value, rel=1e-5), key
        # The branch each case exercises (both must be covered).
        n_ce, n_kd = self.expected_logs["ce_grad_norm"], self.expected_logs["kd_grad_norm"]
        assert (n_kd < n_ce) == self.kd_smaller
