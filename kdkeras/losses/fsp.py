"""FSP, the "flow of solution procedure" loss of Yim et al. (2017)."""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

from keras import ops

from kdkeras.losses.gram import (Features, TapKey, check_choice, cross_layer_pairs,
                                 pairwise_gram_loss)
from kdkeras.losses.gram_ensemble import multi_teacher_gram_loss

Tensor = Any

# mode -> (pool, default weight)
FSP_MODES = {
    "paper": ("avg", 1.0),
    "torchdistill": ("max", 1.0),
    "repdistiller": ("avg", 1.0),
    "sseung0703": ("max", 1e-3),
}


def _sum_of_squares(g_t: Tensor, g_s: Tensor) -> Tensor:
    return ops.sum(ops.square(g_t - g_s), axis=(1, 2))


def _half_sum_of_squares(g_t: Tensor, g_s: Tensor) -> Tensor:
    return 0.5 * _sum_of_squares(g_t, g_s)


def _mean_of_squares(g_t: Tensor, g_s: Tensor) -> Tensor:
    return ops.mean(ops.square(g_t - g_s), axis=(1, 2))


def _sum_of_column_norms(g_t: Tensor, g_s: Tensor) -> Tensor:
    """Σ_j ‖G_T[:, j] − G_S[:, j]‖₂: torch's `(G_s - G_t).norm(dim=1).sum()` on (B, m, n)."""
    sq = ops.sum(ops.square(g_t - g_s), axis=1)
    # sqrt has an infinite slope at 0: route exact zeros around it (value 0, gradient 0).
    positive = sq > 0
    return ops.sum(ops.where(positive, ops.sqrt(ops.where(positive, sq, 1.0)), 0.0), axis=-1)


_DISTANCES = {
    "paper": _sum_of_squares,
    "torchdistill": _sum_of_column_norms,
    "repdistiller": _mean_of_squares,
    "sseung0703": _half_sum_of_squares,
}


def fsp_loss(teacher_feats: Features, student_feats: Features,
             pairs: Optional[Sequence[tuple[TapKey, TapKey]]] = None, *,
             mode: str = "paper", weight: Union[None, float, Sequence[float]] = None,
             pool: Optional[str] = None, teacher_gradient: bool = False) -> Tensor:
    """The FSP loss per example: Gram matrices of adjacent taps, matched in L2.

    Yim, Joo, Bae & Kim (2017), "A gift from knowledge distillation: fast
    optimization, network minimization and transfer learning", Eq. 2:

        L_FSP = (1/N) Σ_x Σ_i λ_i · ‖G_T,i(x) − G_S,i(x)‖²₂,

    G the FSP (Gram) matrix of `gram_matrix` between two taps, over the
    adjacent pairs (the paper's cross-one), all λ_i equal. Returns the inner
    Σ_i per example, shape (B,); the caller's batch mean is the (1/N) Σ_x.
    Where the two maps of a pair differ in size, the larger is pooled down
    (see `gram_matrix`). The public re-implementations differ; `mode` picks one:

      - `"paper"` (default): Σ of squares over the m×n entries, λ = 1,
        average pooling (the paper pairs maps of equal size, so pooling is
        our choice; see `gram_matrix`).
      - `"torchdistill"` (`FSPLoss`): adaptive max-pool of both maps to the
        smaller size, and the *unsquared* L2 norm over the first map's
        channels summed over the second's, Σ_j ‖G_T[:, j] − G_S[:, j]‖₂,
        per-pair weight 1 (its default).
      - `"repdistiller"` (`distiller_zoo/FSP.py`): adaptive average pooling and
        the mean of squares over the m×n entries (it pools to a square of the
        smaller height; identical for square maps).
      - `"sseung0703"` (KD_methods_with_TF `FSP`): 2×2 max-pool of the larger
        map (here adaptive max-pool, the same for the usual 2× ratio),
        ½·Σ of squares, summed over pairs and multiplied by 10⁻³ (an earlier
        revision used 10⁻²).

    For the paper's wider cross-layer variant and the width-stable
    `"mean"` reduction, use `gram_loss`.

    Args:
      teacher_feats: the teacher's taps in forward order, a list or an ordered
        name→map mapping, each (B, h, w, c). A fixed target (stop_gradient).
      student_feats: the student's taps, same form and channel counts.
      pairs: tap pairs (names or positions); default all adjacent pairs, i.e.
        `cross_layer_pairs(range(n), 1)`.
      mode: `"paper"`, `"torchdistill"`, `"repdistiller"` or `"sseung0703"`.
      weight: λ per pair (one float or one per pair); default the mode's
        (1, or 10⁻³ for `"sseung0703"`).
      pool: `"avg"` or `"max"`; default the mode's.

    Returns:
      (B,) float32 per-example losses.
    """
    check_choice("mode", mode, tuple(FSP_MODES))
    default_pool, default_weight = FSP_MODES[mode]
    if pairs is None:
        n = len(teacher_feats)
        if n != len(student_feats):
            raise ValueError(f"Teacher and student need the same number of taps. "
                             f"Received {n} and {len(student_feats)}")
        pairs = cross_layer_pairs(list(range(n)), 1)
    return pairwise_gram_loss(teacher_feats, student_feats, pairs, _DISTANCES[mode],
                              default_weight if weight is None else weight,
                              default_pool if pool is None else pool, teacher_gradient)


# mode -> (reduction, factor): the modes whose distance is factor · (sum | mean) of the
# squared entries, for which the K-teacher mean needs one student Gram per pair
# (`mean_teacher_gram_distance`). torchdistill's column norms are square roots: no split.
SQUARED_FSP_MODES = {
    "paper": ("sum", 1.0),
    "repdistiller": ("mean", 1.0),
    "sseung0703": ("sum", 0.5),
}


def multi_teacher_fsp_loss(teacher_feats: Sequence[Features], student_feats: Features,
                           pairs: Optional[Sequence[tuple[TapKey, TapKey]]] = None, *,
                           mode: str = "paper", weight: Union[None, float, Sequence[float]] = None,
                           pool: Optional[str] = None, teacher_gradient: bool = False) -> Tensor:
    """(1/K) Σ_k fsp_loss(teacher_feats[k], student_feats, ...), per example.

    For the squared modes (`SQUARED_FSP_MODES`) the student's Gram of each pair
    is built and differentiated once (`kdkeras.losses.mean_teacher_gram_distance`);
    `"torchdistill"` is a sum of unsquared norms and is computed per teacher.
    Arguments as `fsp_loss`, with one entry of `teacher_feats` per teacher.

    Returns:
      (B,) float32 per-example losses.
    """
    check_choice("mode", mode, tuple(FSP_MODES))
    teacher_feats = list(teacher_feats)
    if not teacher_feats:
        raise ValueError("`teacher_feats` is empty: pass one list of taps per teacher.")
    if pairs is None:
        pairs = cross_layer_pairs(list(range(len(student_feats))), 1)
    if mode not in SQUARED_FSP_MODES:
        total = sum(fsp_loss(t, student_feats, pairs, mode=mode, weight=weight, pool=pool,
                             teacher_gradient=teacher_gradient) for t in teacher_feats)
        return total / float(len(teacher_feats))
    default_pool, default_weight = FSP_MODES[mode]
    reduction, factor = SQUARED_FSP_MODES[mode]
    weight = default_weight if weight is None else weight
    weight = (factor * float(weight) if isinstance(weight, (int, float))
              else [factor * float(w) for w in weight])
    return multi_teacher_gram_loss(teacher_feats, student_feats, pairs, reduction=reduction,
                                   weight=weight, pool=default_pool if pool is None else pool,
                                   teacher_gradient=teacher_gradient)
