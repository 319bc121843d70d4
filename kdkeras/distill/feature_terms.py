"""The Distiller's feature term over K teachers, with one student Gram per pair where exact.

The paper's feature term is the teacher mean (1/K) Σ_k L_KD,k (Eq. 7–8). For the
Gram and FSP losses whose distance is a sum or mean of squared entries,

    (1/K) Σ_k ‖G_T,k − G_S‖² = ‖Ḡ_T − G_S‖² + (1/K) Σ_k ‖G_T,k − Ḡ_T‖²

(`kdkeras.losses.mean_teacher_gram_distance`), so each student Gram is built and
differentiated once instead of K times, with the same value and gradient. The
K-term form stays where that does not hold: FSP's `"torchdistill"` mode (a sum
of unsquared norms), student-side adapters (the student's Gram then differs per
teacher), RKD and SSKD_SVD.

Teacher-side adapters are bias-free 1×1 convolutions; with average pooling the
Gram of an adapted map is W1ᵀ·G·W2 of the raw one (`kdkeras.losses.adapted_gram`),
so the teacher's raw Gram is computed without a gradient and the adapters enter
as small matrix products. The teacher-only spread term keeps its gradient, which
is how those adapters learn.
"""

from __future__ import annotations

from typing import Optional

from keras import ops

from kdkeras import losses as kd_losses
from kdkeras.distill.adapters import linear_kernel


def squared_gram_form(config, num_pairs: int) -> Optional[tuple[str, float, str]]:
    """`(reduction, λ, pool)` when the feature loss is λ·(sum|mean) of squared Gram differences.

    λ is per pair (Eq. 4's 1/B included for `gram_reduction="mean_over_pairs"`).
    None for every other loss (the K-teacher mean is then taken term by term).
    """
    if config.feature_loss == "gram":
        reduction, weight = kd_losses.pair_reduction(config.gram_reduction,
                                                     float(config.gram_weight), num_pairs)
        return reduction, weight, config.pool
    if config.feature_loss == "fsp" and config.fsp_mode in kd_losses.SQUARED_FSP_MODES:
        pool, weight = kd_losses.FSP_MODES[config.fsp_mode]
        reduction, factor = kd_losses.SQUARED_FSP_MODES[config.fsp_mode]
        return reduction, factor * weight, pool
    return None


def adapt(d, k, t_feats, s_feats):
    """Teacher k's and the student's taps after teacher k's adapters (on either side)."""
    side = d.config.adapter_side
    t_out, s_out = [], []
    for i, (tf_, sf) in enumerate(zip(t_feats, s_feats)):
        j = d._adapter_index[k][i]
        if j is not None and side == "teacher":
            tf_ = d.adapters[j](tf_)
        elif j is not None and side == "student":
            sf = d.adapters[j](sf)
        t_out.append(tf_)
        s_out.append(sf)
    return t_out, s_out


def per_example_feature(d, k, t_feats, s_feats):
    """The feature loss against teacher k per example, (B,), after teacher k's adapters.

    `t_feats` are already stopped; what reaches the loss may be adapter
    outputs, whose weights learn through it.
    """
    c = d.config
    t_feats, s_feats = adapt(d, k, t_feats, s_feats)
    if c.feature_loss == "gram":
        return kd_losses.gram_loss(t_feats, s_feats, d.pairs, weight=c.gram_weight,
                                   reduction=c.gram_reduction, pool=c.pool,
                                   teacher_gradient=True)
    if c.feature_loss == "fsp":
        return kd_losses.fsp_loss(t_feats, s_feats, d.pairs, mode=c.fsp_mode,
                                  teacher_gradient=True)
    if c.feature_loss == "svd":
        return kd_losses.svd_loss(t_feats, s_feats, k=c.svd_k)
    raise AssertionError(c.feature_loss)


def per_teacher_term(d, k, t_feats, s_feats):
    """The batch-mean feature loss against teacher k (`t_feats` already stopped)."""
    c = d.config
    if c.feature_loss == "rkd":   # a loss of the whole batch; RKD has no adapters
        return kd_losses.rkd_loss(ops.mean(t_feats[-1], axis=(1, 2)),
                                  ops.mean(s_feats[-1], axis=(1, 2)),
                                  distance_weight=c.rkd_distance_weight,
                                  angle_weight=c.rkd_angle_weight)
    return ops.mean(per_example_feature(d, k, t_feats, s_feats))


def _student_adapted(d) -> bool:
    return d.config.adapter_side == "student" and any(
        j is not None for row in d._adapter_index for j in row)


def teacher_grams(d, k, t_feats, pool):
    """Teacher k's Gram of every pair, after its teacher-side adapters (`t_feats` stopped)."""
    kernels = [None if j is None else linear_kernel(d.adapters[j]) for j in d._adapter_index[k]]
    adapted = [j is not None for j in d._adapter_index[k]]
    if pool == "avg" and all(w is not None for w, a in zip(kernels, adapted) if a):
        raw = kd_losses.pair_grams(t_feats, d.pairs, pool, "teacher_feats")
        return [kd_losses.adapted_gram(g, kernels[a], kernels[b])
                for g, (a, b) in zip(raw, d.pairs)]
    t_feats, _ = adapt(d, k, t_feats, t_feats)
    return kd_losses.pair_grams(t_feats, d.pairs, pool, "teacher_feats")


def feature_term(d, teacher_feats, s_feats):
    """(1/K) Σ_k of the batch-mean feature loss against each teacher, a scalar.

    `teacher_feats` holds each teacher's taps (float32, stopped); `s_feats`
    the student's (float32).
    """
    form = squared_gram_form(d.config, len(d.pairs)) if d.pairs else None
    if form is None or _student_adapted(d):
        total = sum(per_teacher_term(d, k, t, s_feats) for k, t in enumerate(teacher_feats))
        return total / float(len(teacher_feats))
    reduction, weight, pool = form
    grams_t = [teacher_grams(d, k, t, pool) for k, t in enumerate(teacher_feats)]
    grams_s = kd_losses.pair_grams(s_feats, d.pairs, pool, "student_feats")
    return ops.mean(kd_losses.mean_teacher_gram_loss(grams_t, grams_s, reduction=reduction,
                                                     weight=weight))
