"""KL divergence of the teacher's softmax output from the student's (the paper's P2)."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from kdkeras.losses.gram import as_float32, check_rank, check_same_batch

Tensor = Any


def kl_divergence(teacher_logits: Tensor, student_logits: Tensor,
                  temperature: float = 1.0, *, from_logits: bool = True) -> Tensor:
    """KL(p_T ‖ p_S) per example.

    Chou, Chiu & Liao (2021), P2: the student matches the teacher's softmax
    output,

        KL(p_T ‖ p_S) = Σ_c p_T[c] · (log p_T[c] − log p_S[c]),
        p = softmax(z / T).

    The direction is the teacher's distribution *from* which the student's is
    measured (as Hinton et al. 2015 and `keras.losses.KLDivergence(y_true=p_T,
    y_pred=p_S)`), not the reverse. It is the soft-target cross-entropy
    H(p_T, p_S) minus the teacher's entropy, a constant for the student, so it
    has the same gradient and is 0 when the student matches. No T² factor here:
    `hinton_kd` adds it.

    Args:
      teacher_logits: (B, C) teacher logits (probabilities if
        `from_logits=False`). Wrapped in stop_gradient (a fixed target).
      student_logits: (B, C) student logits (or probabilities).
      temperature: T > 0 divides the logits before the softmax (1 in the paper).
      from_logits: False takes probabilities (e.g. a model ending in softmax);
        they are clipped to [ε, 1] as `keras.losses.kl_divergence` does, and
        `temperature` must then be 1.

    Returns:
      (B,) float32 per-example KL divergences.
    """
    check_rank(teacher_logits, 2, "teacher_logits")
    check_rank(student_logits, 2, "student_logits")
    check_same_batch(teacher_logits, student_logits, "`teacher_logits` and `student_logits`")
    if teacher_logits.shape[-1] != student_logits.shape[-1]:
        raise ValueError("`teacher_logits` and `student_logits` must have the same number of "
                         f"classes. Received shapes {tuple(teacher_logits.shape)} and "
                         f"{tuple(student_logits.shape)}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature <= 0:
        raise ValueError(f"`temperature` must be a positive number. Received: temperature={temperature!r}")
    t = ops.stop_gradient(as_float32(teacher_logits))
    s = as_float32(student_logits)
    if from_logits:
        log_p_t = ops.log_softmax(t / temperature, axis=-1)
        log_p_s = ops.log_softmax(s / temperature, axis=-1)
        p_t = ops.exp(log_p_t)
    else:
        if temperature != 1:
            raise ValueError("`temperature` applies to logits; with from_logits=False it must be 1. "
                             f"Received: temperature={temperature!r}")
        eps = keras.config.epsilon()
        p_t = ops.clip(t, eps, 1.0)
        log_p_t = ops.log(p_t)
        log_p_s = ops.log(ops.clip(s, eps, 1.0))
    return ops.sum(p_t * (log_p_t - log_p_s), axis=-1)
