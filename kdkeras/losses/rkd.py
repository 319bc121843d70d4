"""Relational knowledge distillation (Park, Kim, Lu & Cho 2019)."""

from __future__ import annotations

import math
from typing import Any

from keras import ops

from kdkeras.losses.gram import as_float32, check_same_batch

Tensor = Any


def _flatten(x: Tensor, name: str) -> Tensor:
    x = as_float32(x)
    if len(x.shape) < 2:
        raise ValueError(f"`{name}` must have rank >= 2 (B, D, ...). Received: {name}.shape={tuple(x.shape)}")
    if any(d is None for d in x.shape[1:]):
        raise ValueError(f"`{name}` needs static non-batch dimensions. Received: {name}.shape={tuple(x.shape)}")
    return ops.reshape(x, (-1, math.prod(x.shape[1:])))


def _smooth_l1(x: Tensor) -> Tensor:
    """Huber with δ = 1 (torch's smooth_l1_loss, beta = 1), elementwise."""
    a = ops.abs(x)
    return ops.where(a < 1.0, 0.5 * ops.square(x), a - 0.5)


def _normalized_distances(e: Tensor, eps: float) -> Tensor:
    """ψ_D: pairwise Euclidean distances divided by their mean over distinct pairs."""
    sq = ops.sum(ops.square(e), axis=-1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * ops.matmul(e, ops.transpose(e))
    off_diagonal = 1.0 - ops.eye(ops.shape(e)[0], dtype=e.dtype)
    # The clamp keeps sqrt's slope finite at 0; the mask zeroes the diagonal.
    d = ops.sqrt(ops.maximum(d2, eps)) * off_diagonal
    positive = ops.cast(d > 0, d.dtype)
    mu = ops.sum(d) / ops.maximum(ops.sum(positive), 1.0)
    return d / ops.where(mu > 0, mu, 1.0)


def _angles(e: Tensor, eps: float) -> Tensor:
    """ψ_A[i, j, k] = cos∠(e_j − e_i, e_k − e_i), shape (B, B, B)."""
    diff = e[None, :, :] - e[:, None, :]  # diff[i, j] = e_j − e_i
    norm = ops.sqrt(ops.maximum(ops.sum(ops.square(diff), axis=-1, keepdims=True), eps * eps))
    unit = diff / norm
    return ops.einsum("ijd,ikd->ijk", unit, unit)


def rkd_loss(teacher_embeddings: Tensor, student_embeddings: Tensor, *,
             distance_weight: float = 25.0, angle_weight: float = 50.0,
             eps: float = 1e-12) -> Tensor:
    """RKD-DA: distance-wise plus angle-wise relational loss, a batch-level scalar.

    Park, Kim, Lu & Cho (2019), "Relational knowledge distillation" (CVPR 2019):

        ψ_D(t_i, t_j) = ‖t_i − t_j‖₂ / μ,   μ = mean of ‖t_i − t_j‖₂ over the pairs
        ψ_A(t_i, t_j, t_k) = ⟨(t_i − t_j)/‖t_i − t_j‖, (t_k − t_j)/‖t_k − t_j‖⟩
        L = λ_D · mean_{i,j} l_δ(ψ_D^T − ψ_D^S) + λ_A · mean_{i,j,k} l_δ(ψ_A^T − ψ_A^S)

    l_δ the Huber loss with δ = 1 (smooth-L1); λ_D = 25, λ_A = 50 for
    classification (the paper's setting as we read it, and the defaults of
    RepDistiller's `RKDLoss`). As in that code, μ averages the non-zero distances
    (the pairs i ≠ j), the Huber means run over all B² and B³ entries
    (the zero diagonal included), and directions are normalised as
    x / max(‖x‖, eps).

    Not per example: ψ relates examples of the batch to each other, so the loss
    is one scalar for the batch (unlike the other kdkeras losses); a caller's
    mean over it is a no-op. It depends on the batch size and composition.

    Args:
      teacher_embeddings: (B, D) teacher embeddings, e.g. the global-average-
        pooled penultimate features; extra dims are flattened. A fixed target
        (stop_gradient).
      student_embeddings: (B, D') student embeddings; D' may differ from D (ψ
        compares only distances and angles).
      distance_weight: λ_D (25).
      angle_weight: λ_A (50).
      eps: clamp of squared distances and of norms (1e-12, as the code).

    Returns:
      A float32 scalar (float64 for float64 embeddings).
    """
    t = ops.stop_gradient(_flatten(teacher_embeddings, "teacher_embeddings"))
    s = _flatten(student_embeddings, "student_embeddings")
    check_same_batch(t, s, "`teacher_embeddings` and `student_embeddings`")
    # The inputs' float dtype (float64 stays float64, as in the other losses).
    loss = ops.zeros((), s.dtype)
    if distance_weight:
        d = _smooth_l1(_normalized_distances(s, eps) - _normalized_distances(t, eps))
        loss = loss + distance_weight * ops.mean(d)
    if angle_weight:
        a = _smooth_l1(_angles(s, eps) - _angles(t, eps))
        loss = loss + angle_weight * ops.mean(a)
    return loss
