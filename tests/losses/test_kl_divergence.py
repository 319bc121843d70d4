"""KL(p_T ‖ p_S) against NumPy, its direction, and its input checks."""

import math

import numpy as np
import pytest

from kdkeras import losses

RNG = np.random.default_rng(1)


def np_softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def np_kl(t_logits, s_logits, T=1.0):
    p, q = np_softmax(t_logits / T), np_softmax(s_logits / T)
    return np.sum(p * (np.log(p) - np.log(q)), axis=-1)


def test_direction_is_teacher_from_student_by_hand():
    p_t, p_s = np.array([[0.9, 0.1]]), np.array([[0.5, 0.5]])
    forward = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)   # KL(p_T ‖ p_S) = 0.3681
    reverse = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)   # KL(p_S ‖ p_T) = 0.5108
    got = np.asarray(losses.kl_divergence(np.log(p_t).astype("float32"), np.log(p_s).astype("float32")))
    np.testing.assert_allclose(got, [forward], rtol=1e-5)
    assert abs(got[0] - reverse) > 0.1
    got_probs = losses.kl_divergence(p_t.astype("float32"), p_s.astype("float32"), from_logits=False)
    np.testing.assert_allclose(np.asarray(got_probs), [forward], rtol=1e-5)


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_matches_numpy(temperature):
    t, s = RNG.normal(size=(2, 5)) * 3, RNG.normal(size=(2, 5)) * 3
    got = losses.kl_divergence(t.astype("float32"), s.astype("float32"), temperature)
    assert tuple(got.shape) == (2,)
    np.testing.assert_allclose(np.asarray(got), np_kl(t, s, temperature), rtol=1e-5, atol=1e-7)


def test_zero_when_student_equals_teacher():
    t = RNG.normal(size=(2, 5)).astype("float32")
    np.testing.assert_allclose(np.asarray(losses.kl_divergence(t, t)), [0.0, 0.0], atol=1e-7)


def test_stable_for_extreme_logits():
    t = np.array([[100.0, -100.0, 0.0], [0.0, 0.0, 0.0]], "float32")
    s = np.array([[-100.0, 100.0, 0.0], [50.0, 0.0, 0.0]], "float32")
    assert np.all(np.isfinite(np.asarray(losses.kl_divergence(t, s))))


def test_gradient_is_finite_and_goes_to_the_student_only(gradients):
    t, s = RNG.normal(size=(2, 5)).astype("float32"), RNG.normal(size=(2, 5)).astype("float32")
    g_t, g_s = gradients(lambda t, s: losses.kl_divergence(t, s, 2.0), t, s)
    assert np.all(np.isfinite(g_s)) and np.any(g_s != 0)
    assert g_t is None or not np.any(g_t)
    # d KL / d z_S = (p_S − p_T) / T
    np.testing.assert_allclose(g_s, (np_softmax(s / 2) - np_softmax(t / 2)) / 2, atol=1e-6)


def test_compiles_under_xla(compiled):
    t, s = RNG.normal(size=(2, 5)).astype("float32"), RNG.normal(size=(2, 5)).astype("float32")
    np.testing.assert_allclose(np.asarray(compiled(losses.kl_divergence)(t, s)), np_kl(t, s), rtol=1e-5)


@pytest.mark.parametrize("t_shape, s_shape, kwargs, match", [
    ((2, 5), (2, 4), {}, "number of classes"),
    ((2, 5), (3, 5), {}, "same batch size"),
    ((2, 5, 1), (2, 5, 1), {}, "rank 2"),
    ((2, 5), (2, 5), {"temperature": 0.0}, "temperature"),
    ((2, 5), (2, 5), {"temperature": -1.0}, "temperature"),
    ((2, 5), (2, 5), {"temperature": 2.0, "from_logits": False}, "temperature"),
])
def test_rejects_bad_input(t_shape, s_shape, kwargs, match):
    t, s = np.ones(t_shape, "float32"), np.ones(s_shape, "float32")
    with pytest.raises(ValueError, match=match):
        losses.kl_divergence(t, s, **kwargs)
