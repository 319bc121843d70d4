"""RepDistiller's `KDSVD` (k = 1, k + 3 student candidates) re-derived in NumPy, with a sign choice.

RepDistiller (`distiller_zoo/KDSVD.py`, b84f547) takes the teacher's top right
singular vectors with whatever sign its SVD routine returns; kdkeras gives
them a canonical sign (largest |entry| positive, `kdkeras.losses.svd`). The
teacher's sign enters the loss through the RBF of consecutive layers, so the
two agree only where the signs do; `teacher_sign` picks either convention.
"""

import numpy as np


def _top_vectors(x, n):
    """(s (B, n) normalised to unit norm, v (B, c, n)) of x (B, p, c), NumPy's (LAPACK's) signs."""
    _, s, vh = np.linalg.svd(x, full_matrices=False)
    v = np.swapaxes(vh, 1, 2)[:, :, :n]
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    s = s[:, :n] / np.maximum(np.linalg.norm(s[:, :n], axis=1, keepdims=True), 1e-12)
    return s, v


def _canonical(v):
    idx = np.argmax(np.abs(v), axis=1)[:, None, :]
    peak = np.take_along_axis(v, idx, axis=1)
    return np.where(peak < 0, -v, v)


def _align(v_s, v_t):
    cosine = np.einsum("bcr,bck->brk", v_s, v_t)
    best = np.abs(cosine).max(axis=1, keepdims=True)
    mask = np.where(np.abs(cosine) == best, np.sign(cosine), 0.0)
    return np.einsum("bcr,brk->bck", v_s, mask)


def kdsvd_pairs(teacher_maps, student_maps, k=1, extra=3, teacher_sign="lapack"):
    """RepDistiller's per-pair losses (each summed over the batch, divided by B)."""
    vectors = []
    for t, s in zip(teacher_maps, student_maps):
        b, h, w, c = t.shape
        s_t, v_t = _top_vectors(t.reshape(b, h * w, c), k)
        if teacher_sign == "canonical":
            v_t = _canonical(v_t)
        _, v_s = _top_vectors(s.reshape(s.shape[0], -1, s.shape[-1]), k + extra)
        v_s = _align(v_s, v_t)
        vectors.append((v_t * s_t[:, None, :], v_s * s_t[:, None, :]))
    losses = []
    for (t_b, s_b), (t_a, s_a) in zip(vectors[:-1], vectors[1:]):
        rbf = lambda v, vb: np.exp(-np.square(v[:, :, None, :] - vb[:, None, :, :]) / 8)
        losses.append(np.sum(np.square(rbf(s_a, s_b) - rbf(t_a, t_b))) / t_a.shape[0])
    return losses
