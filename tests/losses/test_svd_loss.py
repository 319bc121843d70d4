"""SSKD_SVD (Lee et al. 2018): NumPy reference, sign invariance, gradients."""

import numpy as np
import pytest

from kdkeras import losses
from kdkeras.losses import svd as svd_mod

RNG = np.random.default_rng(5)
SHAPES = [(2, 4, 4, 3), (2, 2, 2, 5), (2, 2, 2, 4)]


def _maps(shapes=SHAPES, noise=0.5):
    t = [np.maximum(RNG.normal(size=s), 0).astype("float32") + 0.1 for s in shapes]
    s = [x + noise * RNG.normal(size=x.shape).astype("float32") for x in t]
    return t, s


T, S = _maps()


# --- NumPy reference ----------------------------------------------------------------
def np_vectors(x, n):
    x = x.reshape(x.shape[0], -1, x.shape[-1]).astype("float64")
    _, s, vh = np.linalg.svd(x, full_matrices=False)
    return s[:, :n], np.transpose(vh, (0, 2, 1))[:, :, :n]


def np_svd_loss(t_feats, s_feats, k=1, extra=1, sigma=8.0, mode="code"):
    k = min([k] + [min(int(np.prod(x.shape[1:-1])), x.shape[-1]) for x in t_feats + s_feats])
    vecs = []
    for t, s in zip(t_feats, s_feats):
        s_t, v_t = np_vectors(t, k)
        for b in range(v_t.shape[0]):          # teacher: largest |entry| positive
            for i in range(k):
                if v_t[b, np.argmax(np.abs(v_t[b, :, i])), i] < 0:
                    v_t[b, :, i] *= -1
        r = min(k + extra, int(np.prod(s.shape[1:-1])), s.shape[-1])
        _, v_s = np_vectors(s, r)
        aligned = np.zeros_like(v_t)
        for b in range(v_t.shape[0]):          # student: best |cosine|, same sign
            for i in range(k):
                cos = v_s[b].T @ v_t[b, :, i]
                j = np.argmax(np.abs(cos))
                aligned[b, :, i] = v_s[b, :, j] * (1 if cos[j] >= 0 else -1)
        w = s_t / np.linalg.norm(s_t, axis=-1, keepdims=True)
        vecs.append((v_t * w[:, None, :], aligned * w[:, None, :]))
    out = np.zeros(t_feats[0].shape[0])
    for (ta, sa), (tb, sb) in zip(vecs[:-1], vecs[1:]):
        for b in range(len(out)):
            if mode == "code":
                g_t = np.exp(-(ta[b][:, None, :] - tb[b][None, :, :]) ** 2 / sigma)
                g_s = np.exp(-(sa[b][:, None, :] - sb[b][None, :, :]) ** 2 / sigma)
                out[b] += 0.5 * np.sqrt(k) * np.sum((g_s - g_t) ** 2)
            else:
                g_t = np.exp(-np.sum((ta[b][:, None, :] - tb[b][None, :, :]) ** 2, -1) / sigma)
                g_s = np.exp(-np.sum((sa[b][:, None, :] - sb[b][None, :, :]) ** 2, -1) / sigma)
                out[b] += 0.5 * np.sum((g_s - g_t) ** 2)
    return out


# --- values -------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["code", "paper"])
@pytest.mark.parametrize("k, extra", [(1, 1), (2, 1), (2, 0), (3, 2)])
def test_matches_numpy(mode, k, extra):
    got = losses.svd_loss(T, S, k=k, student_extra=extra, mode=mode)
    assert tuple(got.shape) == (2,)
    np.testing.assert_allclose(np.asarray(got), np_svd_loss(T, S, k, extra, mode=mode),
                               rtol=1e-4, atol=1e-8)


def test_sigma_and_weight():
    got = losses.svd_loss(T, S, k=2, sigma=2.0, weight=3.0)
    np.testing.assert_allclose(np.asarray(got), 3.0 * np_svd_loss(T, S, 2, sigma=2.0), rtol=1e-4)


def test_code_and_paper_agree_for_one_vector():
    np.testing.assert_allclose(np.asarray(losses.svd_loss(T, S, k=1, mode="code")),
                               np.asarray(losses.svd_loss(T, S, k=1, mode="paper")), rtol=1e-6)


def test_zero_when_student_equals_teacher():
    for mode in ("code", "paper"):
        np.testing.assert_allclose(np.asarray(losses.svd_loss(T, T, k=2, mode=mode)), [0, 0],
                                   atol=1e-10)


def test_spatial_sizes_may_differ_and_vectors_are_taken_as_one_position():
    t = [T[0], T[1], RNG.normal(size=(2, 4)).astype("float32")]
    s = [RNG.normal(size=(2, 8, 8, 3)).astype("float32"), S[1], RNG.normal(size=(2, 4)).astype("float32")]
    np.testing.assert_allclose(np.asarray(losses.svd_loss(t, s, k=2)), np_svd_loss(t, s, 2), rtol=1e-4)


# --- sign and order invariance ----------------------------------------------------------
@pytest.mark.parametrize("mode", ["code", "paper"])
@pytest.mark.parametrize("side, tap", [("student", 0), ("student", 1), ("teacher", 1), ("teacher", 2)])
def test_sign_flip_of_a_tap_does_not_change_the_loss(mode, side, tap):
    # −X has the same singular vectors up to sign: X = U S Vᵀ, −X = (−U) S Vᵀ = U S (−V)ᵀ.
    t, s = list(T), list(S)
    flipped = t if side == "teacher" else s
    flipped[tap] = -flipped[tap]
    base = np.asarray(losses.svd_loss(T, S, k=2, mode=mode))
    np.testing.assert_allclose(np.asarray(losses.svd_loss(t, s, k=2, mode=mode)), base, rtol=1e-5)


def test_canonical_sign_and_alignment_ignore_vector_signs_and_order():
    v_t = np_vectors(T[1], 2)[1].astype("float32")
    v_s = np_vectors(S[1], 3)[1].astype("float32")
    flip = np.array([1.0, -1.0], "float32")
    np.testing.assert_allclose(np.asarray(svd_mod.canonical_sign(v_t * flip)),
                               np.asarray(svd_mod.canonical_sign(v_t)), atol=1e-7)
    ref = np.asarray(svd_mod.align_to_teacher(v_s, v_t))
    shuffled = v_s[:, :, [2, 0, 1]] * np.array([-1.0, 1.0, -1.0], "float32")
    np.testing.assert_allclose(np.asarray(svd_mod.align_to_teacher(shuffled, v_t)), ref, atol=1e-7)
    # aligned vectors point the teacher's way
    assert np.all(np.sum(ref * v_t, axis=1) >= 0)


# --- gradients and XLA -----------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 2])
def test_safe_gradient_equals_autodiff_through_svd(gradients, k):
    (safe,) = gradients(lambda s: losses.svd_loss(T, s, k=k, gradient="safe"), S)
    (exact,) = gradients(lambda s: losses.svd_loss(T, s, k=k, gradient="exact"), S)
    for a, b in zip(safe, exact):
        assert np.all(np.isfinite(a)) and np.any(a != 0)
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-6 * np.abs(b).max())


def test_safe_gradient_is_finite_for_rank_deficient_maps(gradients):
    s = [x.copy() for x in S]
    s[1][:, 1:] = 0.0
    s[1][:, 0, 1:] = 0.0  # one non-zero position: rank 1, tied zero singular values
    (g,) = gradients(lambda s: losses.svd_loss(T, s, k=2), s)
    for a in g:
        assert np.all(np.isfinite(a))


def test_teacher_gets_no_gradient(gradients):
    (g,) = gradients(lambda t: losses.svd_loss(t, S, k=2), T)
    for a in g:
        assert a is None or not np.any(a)


@pytest.mark.slow
def test_compiles_under_xla(gradients):
    # two taps keep XLA's compile of the eigh loops short on CPU
    t, s = T[1:], S[1:]
    (jitted,) = gradients(lambda s: losses.svd_loss(t, s, k=2), s, jit=True)
    (eager,) = gradients(lambda s: losses.svd_loss(t, s, k=2), s)
    for a, b in zip(jitted, eager):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-7)


# --- input checks ----------------------------------------------------------------------
def test_rejects_bad_input():
    with pytest.raises(ValueError, match="mode"):
        losses.svd_loss(T, S, mode="eid")
    with pytest.raises(ValueError, match="gradient"):
        losses.svd_loss(T, S, gradient="power")
    with pytest.raises(ValueError, match="`k`"):
        losses.svd_loss(T, S, k=0)
    with pytest.raises(ValueError, match="student_extra"):
        losses.svd_loss(T, S, student_extra=-1)
    with pytest.raises(ValueError, match="sigma"):
        losses.svd_loss(T, S, sigma=0.0)
    with pytest.raises(ValueError, match="same number"):
        losses.svd_loss(T, S[:2])
    with pytest.raises(ValueError, match="same number"):
        losses.svd_loss(T[:1], S[:1])
    with pytest.raises(ValueError, match="channels"):
        losses.svd_loss(T, [S[0], S[1][..., :4], S[2]])
    with pytest.raises(ValueError, match="same batch size"):
        losses.svd_loss(T, [x[:1] for x in S])
    with pytest.raises(ValueError, match="rank 2, 3 or 4"):
        losses.svd_loss(T, [S[0][..., None], S[1], S[2]])
