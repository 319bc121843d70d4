"""The cross-layer Gram loss against K teachers, with the student's Gram built once per pair.

The paper's feature term is the teacher mean (1/K) Σ_k L_KD,k (Chou, Chiu &
Liao 2021, Eq. 7–8 with Eq. 4). For distances that are sums or means of squared
Gram entries it splits about the teachers' mean Gram, so the student's side
is built and differentiated once whatever K (`mean_teacher_gram_distance`);
`adapted_gram` takes the Gram of adapted maps from the Gram of the raw ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional, Union

from keras import ops

from kdkeras.losses import gram as gram_lib
from kdkeras.losses.gram import (REDUCTIONS, Features, TapKey, _lookup, as_float32,
                                 check_choice, check_rank, gram_distance)

Tensor = Any


def pair_grams(feats: Features, pairs: Sequence[tuple[TapKey, TapKey]], pool: str = "avg",
               name: str = "feats") -> list[Tensor]:
    """The Gram matrix of each (earlier, later) tap pair of one network, (B, m, n) each."""
    grams = []
    for a, b in pairs:
        f1, f2 = (_lookup(feats, k, name) for k in (a, b))
        check_rank(f1, 4, name)
        check_rank(f2, 4, name)
        # Through the module: one `gram_matrix` builds every Gram of the
        # package, so what wraps or checks it (e.g. the float32 test) sees all.
        grams.append(gram_lib.gram_matrix(f1, f2, pool))
    return grams


def adapted_gram(gram: Tensor, w1: Optional[Tensor] = None, w2: Optional[Tensor] = None) -> Tensor:
    """The Gram of two maps after bias-free 1×1 convolutions, from the Gram before them.

    A bias-free 1×1 convolution with kernel W (c_in, c_out) maps every pixel's
    channels by the same W, so

        G(F1·W1, F2·W2) = W1ᵀ · G(F1, F2) · W2

    and average pooling, a per-channel mean over pixels, commutes with it (max
    pooling does not, unless the pair needs no pooling). The adapters of the
    paper's Sec. V-B then need the teacher's raw Gram, computed once without a
    gradient, and a product of small matrices instead of a convolution of the
    whole map and its backward pass. None stands for the identity.

    Args:
      gram: (B, m, n) Gram of the raw maps.
      w1, w2: (m, m') and (n, n') kernels (a Conv2D 1×1 kernel's [0, 0]), or None.

    Returns:
      (B, m', n') float32.
    """
    check_rank(gram, 3, "gram")
    if w1 is not None:
        gram = ops.einsum("bij,ik->bkj", gram, as_float32(w1))
    if w2 is not None:
        gram = ops.matmul(gram, as_float32(w2))
    return gram


def mean_teacher_gram_distance(teacher_grams: Sequence[Tensor], student_gram: Tensor,
                               reduction: str = "mean", *,
                               teacher_weights: Optional[Tensor] = None) -> Tensor:
    """(1/K) Σ_k d(G_T,k, G_S) per example, with one student term instead of K.

    For d a sum or a mean of squared entries (`gram_distance`), the mean over K
    teachers splits about the teachers' mean Gram Ḡ = (1/K) Σ_k G_T,k:

        (1/K) Σ_k ‖G_T,k − G_S‖² = ‖Ḡ − G_S‖² + (1/K) Σ_k ‖G_T,k − Ḡ‖²

    (expand the square; the cross terms cancel as Σ_k (G_T,k − Ḡ) = 0). The
    second term holds no student, so the student's Gram enters, and is
    differentiated, once whatever K, with the same gradient as the K-term
    form. It is kept (not dropped as a constant): it is part of the logged
    value, and it carries the gradient of trainable teacher-side adapters,
    d/dG_T,k of the whole being (2/K)·(G_T,k − G_S) as in the K-term form.
    Written as a spread about Ḡ rather than (1/K)Σ‖G_T,k‖² − ‖Ḡ‖², it is a
    sum of squares and loses nothing to cancellation.

    With per-example teacher weights w_k(x) ≥ 0, Σ_k w_k = 1
    (`kdkeras.losses.teacher_weighting`), the same expansion about the
    weighted mean Ḡ_w = Σ_k w_k·G_T,k gives

        Σ_k w_k ‖G_T,k − G_S‖² = ‖Ḡ_w − G_S‖² + Σ_k w_k ‖G_T,k − Ḡ_w‖²

    (the cross term Σ_k w_k (G_T,k − Ḡ_w) is 0); w_k = 1/K is the line above.

    Args:
      teacher_grams: K (B, m, n) Gram matrices, one per teacher.
      student_gram: the student's (B, m, n) Gram matrix.
      reduction: `"mean"` or `"sum"`, as `gram_distance`.
      teacher_weights: (B, K) per-example weights summing to 1 over K, fixed
        (stop_gradient); None: the paper's 1/K.

    Returns:
      (B,) float32.
    """
    check_choice("reduction", reduction, REDUCTIONS)
    teacher_grams = list(teacher_grams)
    if not teacher_grams:
        raise ValueError("`teacher_grams` is empty: pass one Gram matrix per teacher.")
    if teacher_weights is not None:
        return _weighted_teacher_gram_distance(teacher_grams, student_gram, reduction,
                                               teacher_weights)
    if len(teacher_grams) == 1:
        return gram_distance(teacher_grams[0], student_gram, reduction)
    mean = ops.sum(ops.stack(teacher_grams, axis=0), axis=0) / float(len(teacher_grams))
    spread = sum(gram_distance(g, mean, reduction) for g in teacher_grams)
    return gram_distance(mean, student_gram, reduction) + spread / float(len(teacher_grams))


def _weighted_teacher_gram_distance(teacher_grams, student_gram, reduction, teacher_weights):
    from kdkeras.losses.teacher_weighting import check_teacher_weights

    check_teacher_weights(teacher_weights, len(teacher_grams))
    w = ops.stop_gradient(as_float32(teacher_weights))
    mean = sum(w[:, k, None, None] * as_float32(g) for k, g in enumerate(teacher_grams))
    spread = sum(w[:, k] * gram_distance(g, mean, reduction) for k, g in enumerate(teacher_grams))
    return gram_distance(mean, student_gram, reduction) + spread


def mean_teacher_gram_loss(teacher_grams: Sequence[Sequence[Tensor]],
                           student_grams: Sequence[Tensor], *, reduction: str = "mean",
                           weight: Union[float, Sequence[float]] = 1.0,
                           teacher_weights: Optional[Tensor] = None) -> Tensor:
    """(1/K) Σ_k Σ_p λ_p · d(G_T,k,p, G_S,p) per example, from Gram matrices.

    The K-teacher mean of Eq. 4 (`gram_loss`) by `mean_teacher_gram_distance`:
    the student's Gram of each pair p enters once.

    Args:
      teacher_grams: for each of the K teachers, its Grams in pair order.
      student_grams: the student's Grams in the same pair order.
      reduction: `"mean"` or `"sum"`, see `gram_loss`.
      weight: λ, one float or one per pair.
      teacher_weights: (B, K) per-example teacher weights summing to 1 (the
        same for every pair), or None for the paper's 1/K.

    Returns:
      (B,) float32.
    """
    teacher_grams = [list(g) for g in teacher_grams]
    student_grams = list(student_grams)
    if not student_grams:
        raise ValueError("`student_grams` is empty: pass one Gram matrix per pair.")
    weights = ([float(weight)] * len(student_grams) if isinstance(weight, (int, float))
               else list(weight))
    if len(weights) != len(student_grams):
        raise ValueError(f"`weight` needs one value per pair ({len(student_grams)}). "
                         f"Received: weight={weight!r}")
    total = None
    for p, (g_s, lam) in enumerate(zip(student_grams, weights)):
        g_t = [grams[p] for grams in teacher_grams]
        for k, g in enumerate(g_t):
            if tuple(g.shape[1:]) != tuple(g_s.shape[1:]):
                raise ValueError(
                    f"Pair {p}: teacher {k}'s Gram is {tuple(g.shape[1:])} but the student's is "
                    f"{tuple(g_s.shape[1:])}; channel counts must match (add an adapter).")
        term = lam * mean_teacher_gram_distance(g_t, g_s, reduction,
                                                teacher_weights=teacher_weights)
        total = term if total is None else total + term
    return total


def multi_teacher_gram_loss(teacher_feats: Sequence[Features], student_feats: Features,
                            pairs: Sequence[tuple[TapKey, TapKey]], *, reduction: str = "mean",
                            weight: Union[float, Sequence[float]] = 1.0, pool: str = "avg",
                            teacher_gradient: bool = False) -> Tensor:
    """(1/K) Σ_k gram_loss(teacher_feats[k], student_feats, ...), per example.

    Equal to the mean of K `gram_loss` calls, value and gradient, but builds
    and differentiates each student Gram once (`mean_teacher_gram_distance`).

    Args:
      teacher_feats: K teachers' taps, each as `gram_loss`'s `teacher_feats`.
        Fixed targets (stop_gradient) unless `teacher_gradient`.
      student_feats, pairs, reduction, weight, pool: as `gram_loss`.
      teacher_gradient: let gradients reach the teachers' maps (adapters).

    Returns:
      (B,) float32 per-example losses.
    """
    check_choice("reduction", reduction, REDUCTIONS)
    pairs = list(pairs)
    if not pairs:
        raise ValueError("`pairs` is empty; use `cross_layer_pairs` to build it.")
    teacher_grams = []
    for feats in teacher_feats:
        if not teacher_gradient:
            feats = ({k: ops.stop_gradient(v) for k, v in feats.items()}
                     if isinstance(feats, Mapping) else [ops.stop_gradient(v) for v in feats])
        teacher_grams.append(pair_grams(feats, pairs, pool, "teacher_feats"))
    student_grams = pair_grams(student_feats, pairs, pool, "student_feats")
    return mean_teacher_gram_loss(teacher_grams, student_grams, reduction=reduction,
                                  weight=weight)
