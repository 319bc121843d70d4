"""Orthogonal (Procrustes) alignment of one network's taps onto another's, and what it does to Grams.

Two networks trained from different initialisations can compute the same
features in another basis of their channels: a permutation, or more generally
a rotation. A Gram matrix G = F1ᵀF2/(hw) (`gram_matrix`) of taps mapped
pixel-wise by orthogonal R1, R2 becomes

    G(F1·R1, F2·R2) = R1ᵀ · G(F1, F2) · R2

(average pooling commutes with the map, as for `adapted_gram`), so teachers
that differ only by such rotations have Grams far apart whose aligned Grams
coincide. Averaging unaligned Grams (P3) then gives a target no network
produces; aligning each teacher onto a reference teacher first does not.

The rotation of each tap is the orthogonal Procrustes solution (Schönemann
1966): for taps X (source) and Y (reference) with their pixels as rows,

    R = argmin_{RᵀR = I} ‖X·R − Y‖_F = U·Vᵀ,   U·S·Vᵀ = SVD(XᵀY),

which needs only the c×c cross-product XᵀY, summed over batches of images
(`tap_cross_product`). The maps are not centred: the Gram is an uncentred
second moment, and it is the uncentred maps whose Gram must agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from keras import ops

from kdkeras.losses.gram import as_float32, check_rank

Tensor = Any


def tap_cross_product(source: Tensor, reference: Tensor) -> Tensor:
    """XᵀY of two (B, h, w, c) taps of one input batch, pixels as rows: (c_source, c_reference)."""
    check_rank(source, 4, "source")
    check_rank(reference, 4, "reference")
    if tuple(source.shape[:3]) != tuple(reference.shape[:3]):
        raise ValueError("`source` and `reference` must be taps of the same images and size. "
                         f"Received shapes {tuple(source.shape)} and {tuple(reference.shape)}")
    x, y = as_float32(source), as_float32(reference)
    return ops.einsum("bhwi,bhwj->ij", x, y)


def orthogonal_procrustes(cross: Tensor) -> Tensor:
    """The orthogonal R minimising ‖X·R − Y‖_F, from the cross-product XᵀY.

    R = U·Vᵀ with U·S·Vᵀ the SVD of XᵀY (Schönemann 1966): ‖XR − Y‖² =
    ‖X‖² + ‖Y‖² − 2·tr(Rᵀ XᵀY), and tr(Rᵀ U S Vᵀ) is largest, Σ S, at R = U Vᵀ.

    Args:
      cross: (c, c) XᵀY (source channels × reference channels; square).

    Returns:
      (c, c) float32 orthogonal matrix.
    """
    check_rank(cross, 2, "cross")
    if cross.shape[0] != cross.shape[1]:
        raise ValueError("An orthogonal map needs as many source as reference channels. "
                         f"Received: cross.shape={tuple(cross.shape)}")
    u, _, vt = ops.svd(as_float32(cross), full_matrices=False)
    return ops.matmul(u, vt)


def rotate_taps(feats: Sequence[Tensor], rotations: Sequence[Tensor]) -> list:
    """Each (B, h, w, c) tap mapped pixel-wise by its (c, c) rotation: F·R (None: unchanged)."""
    feats, rotations = list(feats), list(rotations)
    if len(feats) != len(rotations):
        raise ValueError(f"One rotation per tap: {len(feats)} taps, {len(rotations)} rotations.")
    return [f if r is None else ops.einsum("bhwi,ij->bhwj", as_float32(f), as_float32(r))
            for f, r in zip(feats, rotations)]


def rotated_gram(gram: Tensor, r1: Tensor, r2: Tensor) -> Tensor:
    """R1ᵀ·G·R2: the Gram of the rotated taps from the Gram of the raw ones, (B, m, n)."""
    check_rank(gram, 3, "gram")
    return ops.matmul(ops.einsum("bij,ik->bkj", as_float32(gram), as_float32(r1)),
                      as_float32(r2))
