"""Procrustes alignment of taps and linear CKA, on hand-made rotations and hand-worked values."""

import math

import numpy as np
import pytest

from kdkeras import losses
from kdkeras.losses.alignment import rotated_gram

from gram_reference import np_gram

RNG = np.random.default_rng(11)
# A 90° rotation of channels 0–1 with channel 2 kept, and a cyclic permutation.
ROT90 = np.asarray([[0, -1, 0], [1, 0, 0], [0, 0, 1]], "float32")
CYCLE = np.asarray([[0, 1, 0], [0, 0, 1], [1, 0, 0]], "float32")


def _orthogonal(c, seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(c, c)))
    return q.astype("float32")


def test_procrustes_recovers_a_hand_made_rotation():
    x = RNG.normal(size=(2, 4, 4, 3)).astype("float32")
    for q in (ROT90, CYCLE, _orthogonal(3, 0)):
        y = x @ q
        r = np.asarray(losses.orthogonal_procrustes(losses.tap_cross_product(x, y)))
        np.testing.assert_allclose(r, q, atol=1e-5)
        np.testing.assert_allclose(r.T @ r, np.eye(3), atol=1e-5)


def test_procrustes_by_hand_on_a_scaled_reflection():
    # XᵀY = diag(2, −3): U S Vᵀ with S = (3, 2) gives U Vᵀ = diag(1, −1), the closest
    # orthogonal map (a scale is not a rotation: it stays out).
    r = np.asarray(losses.orthogonal_procrustes(np.diag([2.0, -3.0]).astype("float32")))
    np.testing.assert_allclose(r, np.diag([1.0, -1.0]), atol=1e-6)


def test_rotated_gram_is_the_gram_of_rotated_taps_with_pooling():
    f1 = RNG.normal(size=(2, 4, 4, 3)).astype("float32")
    f2 = RNG.normal(size=(2, 2, 2, 3)).astype("float32")
    r1, r2 = ROT90, _orthogonal(3, 1)
    g = losses.gram_matrix(f1, f2, "avg")
    want = np_gram(*[np.asarray(f) for f in losses.rotate_taps([f1, f2], [r1, r2])], pool="avg")
    np.testing.assert_allclose(np.asarray(rotated_gram(g, r1, r2)), want, rtol=1e-5, atol=1e-6)


def _spread(grams_per_teacher):
    """(1/K) Σ_k ‖G_k − Ḡ‖² summed over pairs, per example (sum reduction)."""
    total = 0.0
    for p in range(len(grams_per_teacher[0])):
        g = [np.asarray(grams[p]) for grams in grams_per_teacher]
        mean = np.mean(g, axis=0)
        total = total + np.mean([((x - mean) ** 2).sum(axis=(1, 2)) for x in g], axis=0)
    return total


def test_aligned_gram_spread_of_rotated_teachers_is_zero():
    """Teachers 1, 2 are teacher 0 with every tap's channels rotated: far apart raw, equal aligned."""
    shapes = [(3, 4, 4, 3), (3, 2, 2, 3), (3, 1, 1, 3)]
    t0 = [RNG.normal(size=s).astype("float32") for s in shapes]
    rotations = [[ROT90, CYCLE, _orthogonal(3, 2)], [_orthogonal(3, 3), ROT90.T, CYCLE.T]]
    teachers = [t0] + [[f @ q for f, q in zip(t0, qs)] for qs in rotations]
    pairs = losses.cross_layer_pairs(range(3), 2)

    def grams(feats):
        return losses.pair_grams(feats, pairs)

    raw = _spread([grams(t) for t in teachers])
    aligned = []
    for t in teachers:
        fitted = [losses.orthogonal_procrustes(losses.tap_cross_product(f, f0))
                  for f, f0 in zip(t, t0)]
        aligned.append(grams(losses.rotate_taps(t, fitted)))
    assert np.all(raw > 0.1)
    np.testing.assert_allclose(_spread(aligned), 0.0, atol=1e-8 + 1e-6 * raw.max())


def test_alignment_bad_inputs():
    with pytest.raises(ValueError, match="same images"):
        losses.tap_cross_product(np.zeros((2, 4, 4, 3), "float32"), np.zeros((2, 2, 2, 3), "float32"))
    with pytest.raises(ValueError, match="as many source as reference"):
        losses.orthogonal_procrustes(np.zeros((3, 4), "float32"))
    with pytest.raises(ValueError, match="One rotation per tap"):
        losses.rotate_taps([np.zeros((1, 2, 2, 3), "float32")], [])


# --- linear CKA ------------------------------------------------------------------------
def test_cka_by_hand_one_feature_is_the_squared_correlation():
    # x = (1, 2, 3) → (−1, 0, 1); y = (1, 0, 0) → (2, −1, −1)/3: ‖yᵀx‖² = 1,
    # ‖xᵀx‖ = 2, ‖yᵀy‖ = 2/3, CKA = 1/(2·2/3) = 3/4.
    got = losses.linear_cka(np.asarray([[1.0], [2.0], [3.0]], "float32"),
                            np.asarray([[1.0], [0.0], [0.0]], "float32"))
    assert float(got) == pytest.approx(0.75, rel=1e-6)


@pytest.mark.parametrize("a", [1.0, 2.0, 5.0])
def test_cka_by_hand_per_channel_scale(a):
    # X rows ±e1, ±e2 (centred), Y = X·diag(a, 1): CKA = (a² + 1)/(√2·√(a⁴ + 1)).
    x = np.asarray([[1, 0], [-1, 0], [0, 1], [0, -1]], "float32")
    got = losses.linear_cka(x, x * np.asarray([a, 1.0], "float32"))
    assert float(got) == pytest.approx((a * a + 1) / (math.sqrt(2) * math.sqrt(a ** 4 + 1)),
                                       rel=1e-5)


def test_cka_is_one_under_channel_rotation_and_scale_and_low_for_unrelated_maps():
    x = RNG.normal(size=(64, 4, 4, 3)).astype("float32")
    assert float(losses.linear_cka(x, 3.0 * (x @ _orthogonal(3, 4)))) == pytest.approx(1.0, abs=1e-5)
    unrelated = RNG.normal(size=(64, 4, 4, 3)).astype("float32")
    assert float(losses.linear_cka(x, unrelated)) < 0.5


def test_cka_needs_matching_examples():
    with pytest.raises(ValueError, match="same batch size"):
        losses.linear_cka(np.zeros((3, 2), "float32"), np.zeros((4, 2), "float32"))
    with pytest.raises(ValueError, match="n >= 2"):
        losses.linear_cka(np.zeros((1, 2), "float32"), np.zeros((1, 2), "float32"))
