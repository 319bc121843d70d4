"""RKD (Park et al. 2019): distance and angle terms against NumPy loops."""

import itertools

import numpy as np
import pytest

from kdkeras import losses

RNG = np.random.default_rng(4)
T = RNG.normal(size=(4, 6)).astype("float32")
S = RNG.normal(size=(4, 3)).astype("float32")


def huber(x):
    a = np.abs(x)
    return np.where(a < 1, 0.5 * x ** 2, a - 0.5)


def np_distances(e):
    b = len(e)
    d = np.array([[np.linalg.norm(e[i] - e[j]) for j in range(b)] for i in range(b)])
    return d / d[d > 0].mean()


def np_angles(e):
    b = len(e)
    a = np.zeros((b, b, b))
    for i, j, k in itertools.product(range(b), repeat=3):
        u, v = e[j] - e[i], e[k] - e[i]
        nu, nv = np.linalg.norm(u), np.linalg.norm(v)
        a[i, j, k] = 0.0 if nu == 0 or nv == 0 else u @ v / (nu * nv)
    return a


def np_rkd(t, s, wd=25.0, wa=50.0):
    t, s = t.reshape(len(t), -1).astype("float64"), s.reshape(len(s), -1).astype("float64")
    return (wd * huber(np_distances(s) - np_distances(t)).mean()
            + wa * huber(np_angles(s) - np_angles(t)).mean())


def test_matches_numpy_and_is_a_scalar():
    got = losses.rkd_loss(T, S)
    assert tuple(got.shape) == ()
    np.testing.assert_allclose(float(got), np_rkd(T, S), rtol=1e-4)


@pytest.mark.parametrize("wd, wa", [(1.0, 0.0), (0.0, 1.0), (25.0, 50.0)])
def test_each_term_matches_numpy(wd, wa):
    got = losses.rkd_loss(T, S, distance_weight=wd, angle_weight=wa)
    np.testing.assert_allclose(float(got), np_rkd(T, S, wd, wa), rtol=1e-4)


def test_huber_regime_is_exercised():
    # a large relative-distance mismatch puts some |ψ_T − ψ_S| above 1 (the linear part)
    t = np.array([[0, 0], [1, 0], [0, 1], [10, 10]], "float32")
    s = np.array([[0, 0], [10, 0], [0, 1], [1, 1]], "float32")
    assert np.abs(np_distances(t.astype("float64")) - np_distances(s.astype("float64"))).max() > 1
    np.testing.assert_allclose(float(losses.rkd_loss(t, s)), np_rkd(t, s), rtol=1e-4)


def test_flattens_feature_maps():
    t4, s4 = T.reshape(4, 1, 2, 3), S.reshape(4, 1, 1, 3)
    np.testing.assert_allclose(float(losses.rkd_loss(t4, s4)), np_rkd(T, S), rtol=1e-4)


def test_zero_when_student_is_teacher_up_to_scale():
    assert float(losses.rkd_loss(T, T)) == pytest.approx(0.0, abs=1e-6)
    # distances are normalised by their mean and angles are scale-free
    assert float(losses.rkd_loss(T, 3.0 * T)) == pytest.approx(0.0, abs=1e-5)


def test_gradients_are_finite_even_with_repeated_embeddings(gradients):
    s = S.copy()
    s[1] = s[0]  # a zero distance and zero-length directions
    (g_s,) = gradients(lambda s: losses.rkd_loss(T, s), s)
    assert np.all(np.isfinite(g_s)) and np.any(g_s != 0)
    (g_t,) = gradients(lambda t: losses.rkd_loss(t, S), T)
    assert not np.any(g_t)


def test_compiles_under_xla(compiled):
    np.testing.assert_allclose(float(compiled(losses.rkd_loss)(T, S)), np_rkd(T, S), rtol=1e-4)


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="same batch size"):
        losses.rkd_loss(T, S[:3])
    with pytest.raises(ValueError, match="rank >= 2"):
        losses.rkd_loss(T[0], S[0])
