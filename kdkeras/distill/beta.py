"""The sigmoid-β gradient split of Chou, Chiu & Liao (2021), Sec. III-D.

The paper computes the gradients of the classification loss and of the
distillation loss with respect to the student separately and scales the
distillation gradient by

    τ = ‖∇CE‖₂ / ‖∇KD‖₂,        β = 1 / (1 + exp(−τ + p)),

where p is the current epoch, applying `β·∇KD` when ‖∇KD‖ < ‖∇CE‖ and ∇KD
unchanged otherwise. The text leaves three things open; each is an option here
(see `BETA_MODES` and `DistillConfig`):

* which terms count as "KD" (`DistillConfig.beta_terms`): the KL and Gram terms
  together (default) or the Gram term alone, with KL joining the CE side;
* the origin of p (`DistillConfig.epoch_origin`): 0 (Keras counts epochs from 0,
  the default) or 1 (the first epoch is p = 1);
* the condition: `"paper"` scales when ‖∇KD‖ < ‖∇CE‖ as written; `"inverted"`
  scales when ‖∇KD‖ > ‖∇CE‖, the reading under which β acts as a clip on a
  distillation gradient that dominates the task gradient.

`"sseung0703"` is the rule of the public TensorFlow KD code whose baselines the
paper appears to use (sseung0703/KD_methods_with_TF at 9fb5414, `op_util.py`):
each variable's KD gradient is clipped by norm to ‖∇CE_v‖·sigmoid(epoch), where
∇CE_v is that variable's own CE gradient. A variable that the CE loss does not
reach at all (the 1×1 adapters, which only the distillation loss uses: the
variables after `num_student_vars`, or any whose CE gradient is None) has no
task gradient to clip against; upstream has no such variable (its
`tf.square(None)` would fail), and a limit of 0 would freeze it. Here its KD
gradient is applied unclipped: the clip protects the task's gradient on shared
weights, and an adapter has none. `"off"` applies ∇KD unchanged.

Everything here is `keras.ops`, so the TensorFlow and JAX train steps share it.
"""

from __future__ import annotations

from typing import Sequence

from keras import ops

BETA_MODES = ("paper", "inverted", "sseung0703", "off")

# Guards the division τ = ‖∇CE‖/‖∇KD‖ when a KD gradient is exactly zero
# (e.g. the student equals the teacher); τ is then huge and β → 1.
_EPS = 1e-12


def global_norm(grads: Sequence) -> "ops.Tensor":
    """‖g‖₂ over a list of gradient tensors (None entries are skipped)."""
    squares = [ops.sum(ops.square(g)) for g in grads if g is not None]
    if not squares:
        return ops.convert_to_tensor(0.0)
    return ops.sqrt(ops.sum(ops.stack(squares)))


def beta_value(ce_norm, kd_norm, epoch):
    """τ and β = 1/(1+exp(−τ+p)) for p = `epoch` (already shifted by its origin)."""
    tau = ce_norm / ops.maximum(kd_norm, _EPS)
    beta = ops.sigmoid(tau - ops.cast(epoch, tau.dtype))
    return tau, beta


def beta_scale(ce_norm, kd_norm, epoch, mode: str = "paper"):
    """The factor applied to the whole KD gradient, with τ and β for the logs.

    Returns `(scale, beta, tau)`. For `"paper"`: scale = β where
    ‖∇KD‖ < ‖∇CE‖ else 1; `"inverted"`: scale = β where ‖∇KD‖ > ‖∇CE‖ else 1;
    `"off"`: scale = 1. (`"sseung0703"` is per variable: see
    `combine_gradients`; this returns scale = 1 for it.)
    """
    if mode not in BETA_MODES:
        raise ValueError(f"Unknown beta_mode {mode!r}. Valid modes: {', '.join(BETA_MODES)}.")
    tau, beta = beta_value(ce_norm, kd_norm, epoch)
    one = ops.ones_like(beta)
    if mode == "paper":
        scale = ops.where(kd_norm < ce_norm, beta, one)
    elif mode == "inverted":
        scale = ops.where(kd_norm > ce_norm, beta, one)
    else:
        scale = one
    return scale, beta, tau


def sseung0703_clip(ce_grad, kd_grad, epoch):
    """One variable's KD gradient clipped by norm to ‖∇CE_v‖·sigmoid(epoch).

    KD_methods_with_TF `op_util.py`: `tf.clip_by_norm(g_kd, ‖g_ce‖·sigmoid(epoch))`,
    clip_by_norm(g, c) = g·c / max(‖g‖, c) = g·min(1, c/‖g‖). Its sigmoid is
    replaced by 1 above 1 − 1e-8, which float32's sigmoid already rounds to 1.
    """
    limit = ops.sqrt(ops.sum(ops.square(ce_grad))) * ops.sigmoid(ops.cast(epoch, kd_grad.dtype))
    norm = ops.sqrt(ops.sum(ops.square(kd_grad)))
    return kd_grad * ops.minimum(ops.cast(1.0, kd_grad.dtype), limit / ops.maximum(norm, _EPS))


def combine_gradients(ce_grads, kd_grads, extra_grads, epoch, mode: str = "paper",
                      num_student_vars: int | None = None):
    """The applied gradient ∇CE + extra + f(∇KD) for each variable, and the logs.

    `ce_grads`, `kd_grads`, `extra_grads` are lists aligned with the trainable
    variables (None where a term does not reach a variable; `extra_grads` holds
    terms outside the β rule, e.g. weight decay). Norms are measured over the
    first `num_student_vars` variables (the student; the rest are adapters,
    whose KD gradient gets the same scale; under `"sseung0703"` they have no CE
    gradient and their KD gradient is not clipped). Returns `(grads, logs)` with logs
    `beta`, `tau`, `ce_grad_norm`, `kd_grad_norm`, `kd_scale`.
    """
    n = len(ce_grads) if num_student_vars is None else num_student_vars
    ce_norm = global_norm(ce_grads[:n])
    kd_norm = global_norm(kd_grads[:n])
    scale, beta, tau = beta_scale(ce_norm, kd_norm, epoch, mode)
    out = []
    for i, (gc, gk, ge) in enumerate(zip(ce_grads, kd_grads, extra_grads)):
        if gk is not None:
            if mode == "sseung0703":
                # Only the distillation loss reaches it (an adapter): no CE
                # gradient to clip against, so its KD gradient goes unclipped
                # (the module docstring says why). On JAX an unreached
                # variable's CE gradient is zeros, not None: hence `i >= n`.
                if gc is not None and i < n:
                    gk = sseung0703_clip(gc, gk, epoch)
            else:
                gk = gk * ops.cast(scale, gk.dtype)
        terms = [g for g in (gc, ge, gk) if g is not None]
        out.append(sum(terms[1:], terms[0]) if terms else None)
    kd_scale = scale if mode != "sseung0703" else ops.ones_like(scale)
    logs = {"beta": beta, "tau": tau, "ce_grad_norm": ce_norm,
            "kd_grad_norm": kd_norm, "kd_scale": kd_scale}
    return out, logs
