"""The KL term against K teachers: the paper's mean of KLs, or the KL to the mean teacher.

Chou, Chiu & Liao (2021), Eq. 8, average the per-teacher KL divergences,

    L_mean_of_kls = Σ_k w_k · KL(p_k ‖ p_S),        w_k = 1/K in the paper,

where another reading of an "ensemble teacher" distils the averaged
distribution,

    L_kl_to_mean = KL(p̄ ‖ p_S),                       p̄ = Σ_k w_k · p_k.

They differ by Σ_k w_k · KL(p_k ‖ p̄) (the generalised Jensen–Shannon
divergence of the teachers), which holds no student: for weights that do not
depend on the student, both have the same gradient, −Σ_c p̄_c ∇log p_S,c (the
cross-entropy to p̄). Only the logged value differs (the mean of KLs is the
larger, by the teachers' disagreement).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

from keras import ops

from kdkeras.losses.gram import as_float32, check_choice, check_rank
from kdkeras.losses.kl import kl_divergence
from kdkeras.losses.teacher_weighting import check_teacher_weights, uniform_teacher_weights

Tensor = Any

KL_FORMS = ("mean_of_kls", "kl_to_mean")


def _weights(teacher_logits, student_logits, weights):
    if not teacher_logits:
        raise ValueError("`teacher_logits` is empty: pass one (B, C) logits tensor per teacher.")
    check_rank(student_logits, 2, "student_logits")
    if weights is None:
        return uniform_teacher_weights(len(teacher_logits), student_logits)
    check_teacher_weights(weights, len(teacher_logits))
    return ops.stop_gradient(as_float32(weights))


def mean_of_kls(teacher_logits: Sequence[Tensor], student_logits: Tensor,
                weights: Optional[Tensor] = None, temperature: float = 1.0) -> Tensor:
    """Σ_k w_k(x) · KL(p_k ‖ p_S) per example (the paper's Eq. 8 with w_k = 1/K).

    Args:
      teacher_logits: K (B, C) logits (fixed targets).
      student_logits: (B, C) logits.
      weights: (B, K) per-example teacher weights summing to 1, or None for 1/K.
      temperature: T of p = softmax(z/T) (no T² factor, as `kl_divergence`).

    Returns:
      (B,) float32.
    """
    teacher_logits = list(teacher_logits)
    w = _weights(teacher_logits, student_logits, weights)
    kls = ops.stack([kl_divergence(t, student_logits, temperature=temperature)
                     for t in teacher_logits], axis=1)
    return ops.sum(w * kls, axis=1)


def kl_to_mean_teacher(teacher_logits: Sequence[Tensor], student_logits: Tensor,
                       weights: Optional[Tensor] = None, temperature: float = 1.0) -> Tensor:
    """KL(p̄ ‖ p_S) per example, p̄ = Σ_k w_k(x) · softmax(z_k / T).

    Args and returns as `mean_of_kls`.

    With one teacher p̄ = p_1 and the two forms are one loss; it is computed as
    `mean_of_kls` (the teacher's log_softmax, not the log of its softmax), so a
    K=1 run gives the same numbers bit for bit under either form, and the
    ensemble study runs it once.
    """
    teacher_logits = list(teacher_logits)
    w = _weights(teacher_logits, student_logits, weights)
    if len(teacher_logits) == 1:
        return mean_of_kls(teacher_logits, student_logits, weights=weights, temperature=temperature)
    kl_divergence(teacher_logits[0], student_logits, temperature=temperature)  # checks shapes, T
    probs = ops.stack([ops.softmax(ops.stop_gradient(as_float32(t)) / temperature, axis=-1)
                       for t in teacher_logits], axis=1)            # (B, K, C)
    p_mean = ops.sum(w[:, :, None] * probs, axis=1)
    log_p_s = ops.log_softmax(as_float32(student_logits) / temperature, axis=-1)
    # 0·log 0 = 0: a class no teacher gives any mass adds nothing.
    log_p_mean = ops.log(ops.maximum(p_mean, 1e-30))
    return ops.sum(ops.where(p_mean > 0, p_mean * (log_p_mean - log_p_s), 0.0), axis=-1)


def ensemble_kl(teacher_logits: Sequence[Tensor], student_logits: Tensor, *,
                form: str = "mean_of_kls", weights: Optional[Tensor] = None,
                temperature: float = 1.0) -> Tensor:
    """`mean_of_kls` or `kl_to_mean_teacher` by name (`KL_FORMS`), per example."""
    check_choice("form", form, KL_FORMS)
    fn = mean_of_kls if form == "mean_of_kls" else kl_to_mean_teacher
    return fn(teacher_logits, student_logits, weights=weights, temperature=temperature)
