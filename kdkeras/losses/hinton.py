"""Hinton et al. (2015) knowledge distillation: soft targets at temperature T."""

from __future__ import annotations

from typing import Any, Optional

import keras
from keras import ops

from kdkeras.losses.gram import as_float32
from kdkeras.losses.kl import kl_divergence

Tensor = Any


def hinton_kd(teacher_logits: Tensor, student_logits: Tensor, labels: Optional[Tensor] = None,
              *, temperature: float = 4.0, alpha: float = 0.9,
              scale_by_t2: bool = True) -> Tensor:
    """Hinton KD per example: α·T²·KL(p_T^T ‖ p_S^T) + (1 − α)·CE(y, p_S).

    Hinton, Vinyals & Dean (2015), "Distilling the knowledge in a neural
    network": the student matches the teacher's softmax at a raised
    temperature T, p^T = softmax(z / T), plus ordinary cross-entropy on the
    labels at T = 1. The soft term's gradients scale as 1/T², so the paper
    multiplies it by T² to keep the two terms' balance when T changes.

    Conventions, with their sources:
      - KL rather than soft-target cross-entropy: they differ by the teacher's
        entropy, a constant for the student (same gradient; KL is 0 at a match).
      - `scale_by_t2=True` (default) is Hinton's paper, torchdistill's
        `KDLoss`, RepDistiller's `DistillKL` and keras-io's distillation
        example; some code omits it (e.g. sseung0703/KD_methods_with_TF's
        `Soft_logits`), which `scale_by_t2=False` reproduces.
      - `alpha` weighs the *soft* term, as RepDistiller (`-a 0.9` KD, `-r 0.1`
        CE, T = 4, the defaults here) and peterliht/knowledge-distillation-pytorch.
        torchdistill and keras-io call the weight of the *hard* term alpha:
        their alpha is 1 − alpha here.

    Args:
      teacher_logits: (B, C) teacher logits, a fixed target (stop_gradient).
      student_logits: (B, C) student logits.
      labels: (B,) integer class labels. None returns the soft term alone,
        T²·KL (or KL), with no α (there is nothing to weigh it against).
      temperature: T > 0 (default 4, RepDistiller's CIFAR setting).
      alpha: weight of the soft term in [0, 1] (default 0.9).
      scale_by_t2: multiply the soft term by T² (default True, Hinton).

    Returns:
      (B,) float32 per-example losses.
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"`alpha` must be a number in [0, 1]. Received: alpha={alpha!r}")
    soft = kl_divergence(teacher_logits, student_logits, temperature)
    if scale_by_t2:
        soft = soft * float(temperature) ** 2
    if labels is None:
        return soft
    hard = keras.losses.sparse_categorical_crossentropy(labels, as_float32(student_logits),
                                                        from_logits=True)
    return alpha * soft + (1.0 - alpha) * ops.reshape(hard, (-1,))
