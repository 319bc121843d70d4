"""`gram_ensemble`: the K-teacher Gram and FSP losses, one student Gram per pair, vs NumPy."""

import numpy as np
import pytest

from kdkeras import losses

from gram_reference import np_gram, np_gram_loss

RNG = np.random.default_rng(7)
SHAPES = [(2, 4, 4, 3), (2, 2, 2, 5), (2, 1, 1, 4)]


def _teachers(k):
    return [[RNG.normal(size=s).astype("float32") for s in SHAPES] for _ in range(k)]


def _student():
    return [RNG.normal(size=s).astype("float32") for s in SHAPES]


def np_mean_teacher_loss(ts, s, pairs, reduction, weights, pool):
    return np.mean([np_gram_loss(t, s, pairs, reduction, weights, pool) for t in ts], axis=0)


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("pool", ["avg", "max"])
def test_value_is_the_teacher_mean_of_eq4(k, reduction, pool):
    ts, s = _teachers(k), _student()
    pairs = losses.cross_layer_pairs(range(3), 2)
    weights = [0.3, 1.0, 2.0]
    got = np.asarray(losses.multi_teacher_gram_loss(ts, s, pairs, reduction=reduction,
                                                    weight=weights, pool=pool))
    np.testing.assert_allclose(got, np_mean_teacher_loss(ts, s, pairs, reduction, weights, pool),
                               rtol=1e-5)


def test_the_split_by_hand():
    # One 1×1 Gram entry per teacher: G_T = 1, 3; G_S = 0. K-term mean (1 + 9)/2 = 5;
    # split: (Ḡ − G_S)² + spread = 2² + ((1 − 2)² + (3 − 2)²)/2 = 4 + 1.
    g_t = [np.ones((1, 1, 1), "float32"), 3 * np.ones((1, 1, 1), "float32")]
    got = losses.mean_teacher_gram_distance(g_t, np.zeros((1, 1, 1), "float32"), "sum")
    np.testing.assert_allclose(np.asarray(got), [5.0])


def np_student_gradient(ts, s, reduction):
    """dL/dS of (1/K)Σ_k ‖G(T_k1, T_k2) − G(S1, S2)‖², one pair of equal-size maps, by hand.

    G = S1ᵀS2/(hw) per example, so dL/dG = (2/K)·Σ_k (G − G_k)·c with c = 1 (sum) or 1/(mn)
    (mean), dL/dS1 = dL/dG·S2ᵀ/(hw) and dL/dS2 = S1·dL/dG/(hw).
    """
    s1, s2 = s
    b, h, w, m = s1.shape
    n = s2.shape[-1]
    c = 1.0 if reduction == "sum" else 1.0 / (m * n)
    g_s = np_gram(s1, s2)
    dg = sum(2.0 * c * (g_s - np_gram(t1, t2)) for t1, t2 in ts) / len(ts)
    d1 = np.einsum("bij,bhwj->bhwi", dg, s2) / (h * w)
    d2 = np.einsum("bhwi,bij->bhwj", s1, dg) / (h * w)
    return d1, d2


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_student_gradient_matches_numpy(gradients, k, reduction):
    shapes = [(2, 3, 3, 2), (2, 3, 3, 4)]
    ts = [[RNG.normal(size=x).astype("float32") for x in shapes] for _ in range(k)]
    s = [RNG.normal(size=x).astype("float32") for x in shapes]
    (g_s,) = gradients(lambda s: losses.multi_teacher_gram_loss(ts, s, [(0, 1)],
                                                                reduction=reduction), s)
    for got, want in zip(g_s, np_student_gradient(ts, s, reduction)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("pool", ["avg", "max"])
def test_gradients_equal_the_k_term_form_for_student_and_teachers(gradients, k, pool):
    """With teacher_gradient (trainable adapters) the teachers' maps get the K-term gradient too."""
    ts, s = _teachers(k), _student()
    pairs = losses.cross_layer_pairs(range(3), 2)

    def split(ts, s):
        return losses.multi_teacher_gram_loss(ts, s, pairs, pool=pool, teacher_gradient=True)

    def k_terms(ts, s):
        return sum(losses.gram_loss(t, s, pairs, pool=pool, teacher_gradient=True)
                   for t in ts) / len(ts)

    got_t, got_s = gradients(split, ts, s)
    want_t, want_s = gradients(k_terms, ts, s)
    for got, want in zip(got_s, want_s):
        assert np.any(want != 0)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7)
    for got_k, want_k in zip(got_t, want_t):
        for got, want in zip(got_k, want_k):
            assert np.any(want != 0)
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7)
    # Without teacher_gradient the teachers are fixed targets.
    fixed_t, _ = gradients(lambda ts, s: losses.multi_teacher_gram_loss(ts, s, pairs, pool=pool),
                           ts, s)
    assert all(g is None or not np.any(g) for row in fixed_t for g in row)


@pytest.mark.parametrize("mode", sorted(losses.FSP_MODES))
@pytest.mark.parametrize("k", [1, 3])
def test_multi_teacher_fsp_is_the_mean_of_fsp(gradients, mode, k):
    ts, s = _teachers(k), _student()
    got = np.asarray(losses.multi_teacher_fsp_loss(ts, s, mode=mode))
    want = np.mean([np.asarray(losses.fsp_loss(t, s, mode=mode)) for t in ts], axis=0)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    (g_split,) = gradients(lambda s: losses.multi_teacher_fsp_loss(ts, s, mode=mode), s)
    (g_terms,) = gradients(lambda s: sum(losses.fsp_loss(t, s, mode=mode) for t in ts) / k, s)
    for a, b in zip(g_split, g_terms):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-8)


def test_squared_fsp_modes_are_the_squared_distances():
    assert set(losses.SQUARED_FSP_MODES) == set(losses.FSP_MODES) - {"torchdistill"}


# --- the adapter commute ---------------------------------------------------------------
@pytest.mark.parametrize("shapes", [
    ((2, 4, 4, 3), (2, 2, 2, 5)),   # avg-pooled 2x
    ((2, 3, 3, 2), (2, 2, 2, 4)),   # adaptive bins
    ((2, 4, 4, 3), (2, 4, 4, 5)),   # no pooling
])
def test_adapted_gram_is_the_gram_of_the_adapted_maps(shapes):
    f1, f2 = (RNG.normal(size=x).astype("float32") for x in shapes)
    w1 = RNG.normal(size=(shapes[0][-1], 6)).astype("float32")
    w2 = RNG.normal(size=(shapes[1][-1], 7)).astype("float32")
    want = np_gram(np.einsum("bhwc,cd->bhwd", f1, w1), np.einsum("bhwc,cd->bhwd", f2, w2), "avg")
    got = losses.adapted_gram(losses.gram_matrix(f1, f2, "avg"), w1, w2)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)
    # One side only (the other tap needs no adapter).
    np.testing.assert_allclose(np.asarray(losses.adapted_gram(losses.gram_matrix(f1, f2), w1)),
                               np_gram(np.einsum("bhwc,cd->bhwd", f1, w1), f2, "avg"),
                               rtol=1e-5, atol=1e-5)


def test_max_pooling_does_not_commute_with_an_adapter():
    """Why the commute is taken for average pooling only."""
    f1 = RNG.normal(size=(1, 4, 4, 2)).astype("float32")
    f2 = RNG.normal(size=(1, 2, 2, 2)).astype("float32")
    w = np.array([[1.0, 0.0], [0.0, -1.0]], "float32")
    via_gram = losses.adapted_gram(losses.gram_matrix(f1, f2, "max"), w, None)
    direct = np_gram(np.einsum("bhwc,cd->bhwd", f1, w), f2, "max")
    assert not np.allclose(np.asarray(via_gram), direct, atol=1e-3)


def test_mismatched_gram_shapes_and_empty_inputs_are_clear_errors():
    s = _student()
    with pytest.raises(ValueError, match="channel counts must match"):
        losses.multi_teacher_gram_loss([[s[0], s[1][..., :4], s[2]]], s, [(0, 1)])
    with pytest.raises(ValueError, match="empty"):
        losses.multi_teacher_gram_loss([s], s, [])
    with pytest.raises(ValueError, match="empty"):
        losses.mean_teacher_gram_distance([], s[0])
    with pytest.raises(ValueError, match="one value per pair"):
        losses.multi_teacher_gram_loss([s], s, [(0, 1)], weight=[1.0, 2.0])
