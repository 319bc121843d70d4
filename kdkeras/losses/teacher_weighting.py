"""Per-example weights of K teachers: the paper's mean, CA-MKD's confidence, the closest teacher.

The paper's ensemble terms are plain means over the K teachers (Chou, Chiu &
Liao 2021, Eq. 7–8): every teacher gets 1/K on every example. The
weightings here replace that 1/K by per-example weights w_k(x) ≥ 0 with
Σ_k w_k(x) = 1, so `"mean"` is exactly the paper and the others reweight
without changing the scale of the term:

    L(x) = Σ_k w_k(x) · d_k(x)

with d_k the KL or Gram distance to teacher k. Weights are fixed targets
(stop_gradient): the student is pulled towards the teachers they favour, not
towards a change of the weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from kdkeras.losses.gram import as_float32, check_rank

Tensor = Any

WEIGHTINGS = ("mean", "confidence", "closest")


def _stack_logits(teacher_logits: Sequence[Tensor]) -> list:
    logits = [as_float32(t) for t in teacher_logits]
    if not logits:
        raise ValueError("`teacher_logits` is empty: pass one (B, C) logits tensor per teacher.")
    for k, t in enumerate(logits):
        check_rank(t, 2, f"teacher_logits[{k}]")
    return logits


def uniform_teacher_weights(num_teachers: int, like: Tensor) -> Tensor:
    """The paper's 1/K for every teacher, (B, K), B the batch of `like` ((B, ...))."""
    if num_teachers < 1:
        raise ValueError(f"num_teachers must be >= 1. Received: num_teachers={num_teachers}")
    ones = ops.ones_like(as_float32(like)[:, :1])
    return ops.repeat(ones, num_teachers, axis=1) / float(num_teachers)


def confidence_weights(teacher_logits: Sequence[Tensor], labels: Tensor) -> Tensor:
    """CA-MKD's per-example teacher weights from each teacher's cross-entropy on the label.

    Zhang, Chen & Wang (2022), "Confidence-aware multi-teacher knowledge
    distillation" (ICASSP), Eq. 2, as the public code (Rorozhl/CA-MKD,
    `helper/loops.py`, `ensemble_method == 'CAMKD'`) computes it:

        L_CE,k(x) = CE(softmax(z_k(x)), y(x))            (temperature 1)
        w_k(x)    = (1 − softmax_k(L_CE,·(x))) / (K − 1)

    a teacher that is more confident in the true label weighs more. The
    weights sum to 1 over k (Σ_k softmax_k = 1); K = 1 gives 1. (The code
    then divides its weighted sum by K as well, `/ (bsz * teacher_num)`: a
    constant factor 1/K that the term's weight absorbs. Here the weights
    replace the paper's 1/K, so uniform CE gives the paper's mean exactly.)

    Args:
      teacher_logits: K (B, C) logits tensors (fixed: stop_gradient).
      labels: (B,) integer class labels.

    Returns:
      (B, K) float32 weights, each row summing to 1.
    """
    logits = _stack_logits(teacher_logits)
    k = len(logits)
    ce = ops.stack([keras.losses.sparse_categorical_crossentropy(labels, ops.stop_gradient(t),
                                                                 from_logits=True)
                    for t in logits], axis=1)
    if k == 1:
        return ops.ones_like(ce)
    return ops.stop_gradient((1.0 - ops.softmax(ce, axis=1)) / float(k - 1))


def closest_teacher_weights(distances: Tensor) -> Tensor:
    """Weight 1 on the teacher nearest the student on each example, 0 on the others.

    The winner-take-all ("oracle") loss of multiple choice learning
    (Guzman-Rivera, Batra & Kohli 2012, "Multiple choice learning: learning
    to produce multiple structured outputs"; Lee et al. 2016, "Stochastic
    multiple choice learning for training diverse deep ensembles"), turned
    round: there one of K models takes the loss of each example; here the one
    student follows, on each example, the one of K teachers it is already
    closest to,

        w_k(x) = 1 if k = argmin_j d_j(x) else 0      (ties: the first),

    so it never chases the average of teachers that disagree (the mean Gram
    that no network produces). Our adaptation for P3, not a published KD
    method.

    Args:
      distances: (B, K) per-example distances of the student to each teacher.

    Returns:
      (B, K) float32 one-hot rows (no gradient).
    """
    check_rank(distances, 2, "distances")
    d = ops.stop_gradient(as_float32(distances))
    return ops.one_hot(ops.argmin(d, axis=1), int(d.shape[1]), dtype="float32")


def check_teacher_weights(weights: Tensor, num_teachers: int) -> None:
    """(B, K) with K = `num_teachers`, where the shapes are known."""
    check_rank(weights, 2, "teacher_weights")
    if weights.shape[1] is not None and weights.shape[1] != num_teachers:
        raise ValueError(f"`teacher_weights` needs one column per teacher ({num_teachers}). "
                         f"Received: teacher_weights.shape={tuple(weights.shape)}")
