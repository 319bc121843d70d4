"""Hinton KD: the T² factor, the α mix and the hard term, against NumPy."""

import numpy as np
import pytest

from kdkeras import losses

RNG = np.random.default_rng(2)
T_LOGITS = RNG.normal(size=(2, 4)).astype("float32") * 2
S_LOGITS = RNG.normal(size=(2, 4)).astype("float32") * 2
LABELS = np.array([1, 3], "int32")


def np_log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def np_kl(t, s, T):
    lp, lq = np_log_softmax(t / T), np_log_softmax(s / T)
    return np.sum(np.exp(lp) * (lp - lq), axis=-1)


def test_t_squared_scaling():
    with_t2 = np.asarray(losses.hinton_kd(T_LOGITS, S_LOGITS, temperature=4.0))
    without = np.asarray(losses.hinton_kd(T_LOGITS, S_LOGITS, temperature=4.0, scale_by_t2=False))
    np.testing.assert_allclose(without, np_kl(T_LOGITS, S_LOGITS, 4.0), rtol=1e-5)
    np.testing.assert_allclose(with_t2, 16.0 * without, rtol=1e-6)


@pytest.mark.parametrize("alpha, temperature, scale", [(0.9, 4.0, True), (0.3, 2.0, False),
                                                       (1.0, 4.0, True), (0.0, 4.0, True)])
def test_matches_numpy_with_labels(alpha, temperature, scale):
    soft = np_kl(T_LOGITS, S_LOGITS, temperature) * (temperature ** 2 if scale else 1.0)
    hard = -np_log_softmax(S_LOGITS)[np.arange(2), LABELS]
    got = losses.hinton_kd(T_LOGITS, S_LOGITS, LABELS, temperature=temperature, alpha=alpha,
                           scale_by_t2=scale)
    assert tuple(got.shape) == (2,)
    np.testing.assert_allclose(np.asarray(got), alpha * soft + (1 - alpha) * hard, rtol=1e-5)


def test_defaults_are_repdistiller_t4_alpha09():
    got = np.asarray(losses.hinton_kd(T_LOGITS, S_LOGITS, LABELS))
    want = np.asarray(losses.hinton_kd(T_LOGITS, S_LOGITS, LABELS, temperature=4.0, alpha=0.9,
                                       scale_by_t2=True))
    np.testing.assert_array_equal(got, want)


def test_soft_term_is_zero_when_student_equals_teacher():
    np.testing.assert_allclose(np.asarray(losses.hinton_kd(T_LOGITS, T_LOGITS)), [0, 0], atol=1e-6)


def test_gradient_is_finite(gradients):
    (g_s,) = gradients(lambda s: losses.hinton_kd(T_LOGITS, s, LABELS), S_LOGITS)
    assert np.all(np.isfinite(g_s)) and np.any(g_s != 0)


@pytest.mark.parametrize("alpha", [-0.1, 1.5, True])
def test_rejects_bad_alpha(alpha):
    with pytest.raises(ValueError, match="alpha"):
        losses.hinton_kd(T_LOGITS, S_LOGITS, LABELS, alpha=alpha)
