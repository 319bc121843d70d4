"""Per-example teacher weights and the K-teacher KL forms, against values worked by hand."""

import math

import numpy as np
import pytest

from kdkeras import losses

LN3 = math.log(3.0)
# Two classes, label 0: CE = ln 2, ln(4/3) and ln 4 for these three teachers.
T_UNSURE, T_RIGHT, T_WRONG = [[0.0, 0.0]], [[LN3, 0.0]], [[0.0, LN3]]


def _f(x):
    return np.asarray(x, "float32")


def test_confidence_weights_two_teachers_by_hand():
    # softmax_k(ln 2, ln 4/3) = (2, 4/3)/(10/3) = (0.6, 0.4); w = (1 − s)/(K − 1) = (0.4, 0.6).
    w = losses.confidence_weights([_f(T_UNSURE), _f(T_RIGHT)], np.asarray([0]))
    np.testing.assert_allclose(np.asarray(w), [[0.4, 0.6]], rtol=1e-6)


def test_confidence_weights_three_teachers_by_hand():
    # softmax_k(ln 2, ln 4/3, ln 4) = (2, 4/3, 4)/(22/3) = (6, 4, 12)/22;
    # w = (1 − s)/2 = (16, 18, 10)/44: the teacher surest of the label weighs most.
    w = losses.confidence_weights([_f(T_UNSURE), _f(T_RIGHT), _f(T_WRONG)], np.asarray([0]))
    np.testing.assert_allclose(np.asarray(w), [[16 / 44, 18 / 44, 10 / 44]], rtol=1e-6)


def test_confidence_weights_one_teacher_is_one_and_rows_sum_to_one():
    rng = np.random.default_rng(0)
    assert np.asarray(losses.confidence_weights([_f(T_RIGHT)], np.asarray([1]))).tolist() == [[1.0]]
    logits = [rng.normal(size=(4, 5)).astype("float32") for _ in range(3)]
    w = np.asarray(losses.confidence_weights(logits, np.asarray([0, 1, 2, 3])))
    np.testing.assert_allclose(w.sum(axis=1), np.ones(4), rtol=1e-6)


def test_closest_teacher_weights_one_hot_with_ties_to_the_first():
    w = losses.closest_teacher_weights(_f([[3.0, 1.0, 2.0], [0.0, 5.0, 0.0]]))
    assert np.asarray(w).tolist() == [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]


def test_uniform_weights_are_one_over_k():
    w = losses.uniform_teacher_weights(4, np.zeros((2, 7), "float32"))
    np.testing.assert_allclose(np.asarray(w), np.full((2, 4), 0.25))


def test_bad_inputs_give_one_clear_error():
    with pytest.raises(ValueError, match="empty"):
        losses.confidence_weights([], np.asarray([0]))
    with pytest.raises(ValueError, match="rank 2"):
        losses.closest_teacher_weights(_f([1.0, 2.0]))
    with pytest.raises(ValueError, match="one column per teacher"):
        losses.mean_of_kls([_f(T_RIGHT)] * 2, _f(T_UNSURE), weights=_f([[0.2, 0.3, 0.5]]))
    with pytest.raises(ValueError, match="form"):
        losses.ensemble_kl([_f(T_RIGHT)], _f(T_UNSURE), form="median")


# --- the two KL forms ------------------------------------------------------------------
# Teachers p1 = (1/2, 1/2), p2 = (3/4, 1/4); student p_S = (1/2, 1/2).
KL_P2_U = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)


@pytest.mark.parametrize("w, mean_kl, kl_mean", [
    (None, KL_P2_U / 2, 5 / 8 * math.log(5 / 4) + 3 / 8 * math.log(3 / 4)),
    ([[0.25, 0.75]], 0.75 * KL_P2_U,
     11 / 16 * math.log(11 / 8) + 5 / 16 * math.log(5 / 8)),   # p̄ = (11/16, 5/16)
])
def test_kl_forms_by_hand(w, mean_kl, kl_mean):
    t, s = [_f(T_UNSURE), _f(T_RIGHT)], _f(T_UNSURE)
    w = None if w is None else _f(w)
    got_mean = losses.ensemble_kl(t, s, form="mean_of_kls", weights=w)
    got_to_mean = losses.ensemble_kl(t, s, form="kl_to_mean", weights=w)
    np.testing.assert_allclose(np.asarray(got_mean), [mean_kl], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(got_to_mean), [kl_mean], rtol=1e-5)


def test_kl_forms_have_one_gradient_and_differ_by_the_teachers_disagreement(gradients):
    """Σ_k w_k KL(p_k‖p_S) − KL(p̄‖p_S) = Σ_k w_k KL(p_k‖p̄), free of the student."""
    rng = np.random.default_rng(1)
    t = [rng.normal(size=(3, 4)).astype("float32") for _ in range(3)]
    s = rng.normal(size=(3, 4)).astype("float32")
    w = losses.confidence_weights(t, np.asarray([0, 1, 2]))
    for temp in (1.0, 4.0):
        (g_mean,) = gradients(lambda s: losses.mean_of_kls(t, s, w, temp), s)
        (g_to_mean,) = gradients(lambda s: losses.kl_to_mean_teacher(t, s, w, temp), s)
        np.testing.assert_allclose(g_mean, g_to_mean, rtol=1e-4, atol=1e-7)
    w = np.asarray(w)
    p = [np.exp(z) / np.exp(z).sum(-1, keepdims=True) for z in t]
    p_bar = sum(w[:, k:k + 1] * p[k] for k in range(3))
    js = sum(w[:, k] * (p[k] * np.log(p[k] / p_bar)).sum(-1) for k in range(3))
    gap = np.asarray(losses.mean_of_kls(t, s, w)) - np.asarray(losses.kl_to_mean_teacher(t, s, w))
    np.testing.assert_allclose(gap, js, rtol=1e-4, atol=1e-6)


def test_kl_forms_with_one_teacher_are_one_computation():
    # p̄ = p_1: both forms return the same numbers bit for bit (the ensemble study runs the
    # K=1 twin of `kl_to_mean` once, as `ours`), at T = 1 and T = 4, with and without weights.
    rng = np.random.default_rng(3)
    t = [(8 * rng.normal(size=(6, 10))).astype("float32")]
    s = (8 * rng.normal(size=(6, 10))).astype("float32")
    for temp in (1.0, 4.0):
        for w in (None, np.ones((6, 1), "float32")):
            want = np.asarray(losses.mean_of_kls(t, s, w, temp))
            np.testing.assert_array_equal(np.asarray(losses.kl_to_mean_teacher(t, s, w, temp)), want)
            np.testing.assert_array_equal(
                np.asarray(losses.ensemble_kl(t, s, form="kl_to_mean", weights=w, temperature=temp)), want)
        np.testing.assert_array_equal(want, np.asarray(losses.kl_divergence(t[0], s, temperature=temp)))


def test_mean_of_kls_with_uniform_weights_is_the_mean_of_kl_divergence():
    rng = np.random.default_rng(2)
    t = [rng.normal(size=(2, 5)).astype("float32") for _ in range(3)]
    s = rng.normal(size=(2, 5)).astype("float32")
    want = np.mean([np.asarray(losses.kl_divergence(z, s, temperature=2.0)) for z in t], axis=0)
    np.testing.assert_allclose(np.asarray(losses.mean_of_kls(t, s, temperature=2.0)), want,
                               rtol=1e-6)


# --- the weighted Gram term --------------------------------------------------------------
def test_weighted_gram_distance_by_hand():
    # G_T = 1, 3; G_S = 0; w = (1/4, 3/4): Σ w_k d_k = 1/4·1 + 3/4·9 = 7.
    # Split: Ḡ_w = 5/2, (5/2)² + 1/4·(3/2)² + 3/4·(1/2)² = 25/4 + 9/16 + 3/16 = 7.
    g_t = [np.ones((1, 1, 1), "float32"), 3 * np.ones((1, 1, 1), "float32")]
    got = losses.mean_teacher_gram_distance(g_t, np.zeros((1, 1, 1), "float32"), "sum",
                                            teacher_weights=_f([[0.25, 0.75]]))
    np.testing.assert_allclose(np.asarray(got), [7.0], rtol=1e-6)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_weighted_gram_loss_equals_the_weighted_k_term_form(gradients, reduction):
    rng = np.random.default_rng(3)
    grams_t = [[rng.normal(size=(2, 3, 4)).astype("float32")] for _ in range(3)]
    g_s = rng.normal(size=(2, 3, 4)).astype("float32")
    w = _f([[0.2, 0.5, 0.3], [0.0, 0.0, 1.0]])

    def k_terms(g):
        return sum(w[:, k] * np.asarray(losses.gram_distance(grams_t[k][0], g, reduction))
                   for k in range(3))

    got = losses.mean_teacher_gram_loss(grams_t, [g_s], reduction=reduction, weight=0.5,
                                        teacher_weights=w)
    np.testing.assert_allclose(np.asarray(got), 0.5 * k_terms(g_s), rtol=1e-5)
    (grad,) = gradients(lambda g: losses.mean_teacher_gram_loss(
        grams_t, [g], reduction=reduction, teacher_weights=w), g_s)
    scale = 2.0 if reduction == "sum" else 2.0 / 12
    want = sum(scale * w[:, k, None, None] * (g_s - grams_t[k][0]) for k in range(3))
    np.testing.assert_allclose(grad, want, rtol=1e-4, atol=1e-6)
