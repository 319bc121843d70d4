"""The Distiller's train step, written once for both backends.

The teachers run in inference mode (or their outputs come with the batch,
computed ahead: `teacher_outputs.py`), the student runs, the loss terms are
composed (`Distiller.compute_terms`); then ∇CE and ∇KD are taken apart (with β
off, where the split changes nothing in the update, one gradient of the whole
loss, logged as `ce_grad_norm` with `kd_grad_norm` = τ = 0, β = `kd_scale` = 1),
unscaled when a `LossScaleOptimizer` scaled the losses (so that τ and λ·W see
true values), combined by β with the coupled weight decay λ·W
(`beta.combine_gradients`), zero-filled where no loss reached a variable, and
applied. A backend (`steps_tf.TensorFlowStep`, `steps_jax.JaxStep`, each module
imported on first use) supplies only what differs: the two gradients (a tape;
one VJP pulled back twice), their all-reduce over `tf.distribute` replicas
before β, and the apply.
"""

from __future__ import annotations

import keras
from keras import ops

from kdkeras.distill.beta import combine_gradients


def backend_steps():
    """The active backend's half of the step: its module, imported on first use."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        from kdkeras.distill import steps_tf as module
    elif backend == "jax":
        from kdkeras.distill import steps_jax as module
    else:
        raise NotImplementedError("The Distiller's steps support the TensorFlow and JAX "
                                  f"backends. Received: backend={backend!r}.")
    return module


# --- the step ---------------------------------------------------------------------
def batch_inputs(d, data, teacher_outputs=None):
    """`(x, y, teacher_outputs)`: the teachers' outputs as given, from the batch, or run here."""
    x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
    if teacher_outputs is not None:
        return x, y, teacher_outputs
    # Teachers run in inference mode, before (and outside) any gradient, unless
    # their outputs came with the batch, computed ahead (teacher_outputs.py).
    if not (isinstance(x, dict) and "teacher_outputs" in x and d.has_kd):
        return x, y, d.teacher_outputs(x)
    x, precomputed = x["image"], [list(t) for t in x["teacher_outputs"]]
    expected = [len(view.outputs) for view in d.teacher_views]
    if [len(o) for o in precomputed] != expected:
        raise ValueError(
            "The batch's teacher_outputs do not match the Distiller's teachers: expected "
            f"{len(expected)} teachers with {expected} outputs each ([logits, taps...]), got "
            f"{[len(o) for o in precomputed]}. Build each TFLiteTeacher with the taps the "
            "method reads (taps=True).")
    return x, y, precomputed


def distillation_step(d, x, y, teacher_outputs, backend):
    """One train step of `d` on `(x, y)`; `backend` takes the gradients and applies them.

    `backend`: `replicas` (each replica's losses are divided by it),
    `loss_scale` (None, or the `LossScaleOptimizer`'s) and `two_gradients(loss_sides,
    split)`, `all_reduce(grads)`, `apply(grads, terms, record)` (its result returned).
    """
    split = d.has_kd and d.config.beta_mode != "off"   # only the β rule needs ∇CE, ∇KD apart
    loss_scale = backend.loss_scale

    def loss_sides():
        """`((ce_side, kd_side), terms)`: the losses whose gradients are ∇CE and ∇KD."""
        terms = d.compute_terms(y, d.student_outputs(x, training=True), teacher_outputs)
        sides = (terms["ce_side"], terms["kd_side"])
        if backend.replicas > 1:
            sides = tuple(side / backend.replicas for side in sides)
        if loss_scale is not None:
            sides = tuple(ops.multiply(side, loss_scale) for side in sides)
        return sides, terms

    ce_grads, kd_grads, terms = backend.two_gradients(loss_sides, split)
    if loss_scale is not None:
        inverse = 1.0 / loss_scale
        ce_grads, kd_grads = ([None if g is None else g * ops.cast(inverse, g.dtype) for g in gs]
                              for gs in (ce_grads, kd_grads))
    ce_grads, kd_grads = backend.all_reduce(ce_grads), backend.all_reduce(kd_grads)
    variables = d.trainable_variables
    decay = [d.weight_decay * v.value if d.weight_decay and v.path.endswith("kernel") else None
             for v in variables]   # coupled L2 weight decay λ·W on every kernel, outside β
    grads, beta_logs = combine_gradients(ce_grads, kd_grads, decay,
                                         d.epoch + float(d.config.epoch_origin),
                                         mode=d.config.beta_mode,
                                         num_student_vars=d._num_student_vars)
    if d.has_kd and not split:
        # One gradient: its norm is logged as ce_grad_norm; no split, so no τ.
        one = ops.ones_like(beta_logs["beta"])
        beta_logs = {**beta_logs, "tau": 0.0 * one, "beta": one, "kd_scale": one}
    grads = [ops.zeros(v.shape, v.dtype) if g is None else g for g, v in zip(grads, variables)]
    return backend.apply(grads, terms, lambda: record_metrics(d, terms, y, beta_logs))


# --- metrics ------------------------------------------------------------------------
def record_metrics(d, terms, y, beta_logs) -> dict:
    """Adds a step's loss terms, β logs and logits to the metrics; returns every metric."""
    values = {"loss": terms["ce_side"] + terms["kd_side"], "ce": terms["ce"], "kl": terms["kl"],
              "feature": terms["feature"], **beta_logs}
    for name, tracker in d._trackers.items():
        tracker.update_state(values[name])
    d._accuracy.update_state(y, terms["logits"])
    if getattr(d, "_compile_metrics", None) is not None:
        d._compile_metrics.update_state(y, terms["logits"])
    return metric_logs(d)


def metric_logs(d) -> dict:
    """Every metric's value by name (a compiled metric list flattened into its entries)."""
    logs = {}
    for m in d.metrics:
        value = m.result()
        logs.update(value if isinstance(value, dict) else {m.name: value})
    return logs


def student_test_step(d, data) -> dict:
    """`test_step(data)`: the student alone, its CE and accuracy (and compiled metrics)."""
    x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
    logits = ops.cast(d.student(x, training=False), "float32")
    ce = ops.mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
    for name in ("ce", "loss"):
        d._trackers[name].update_state(ce)
    d._accuracy.update_state(y, logits)
    logs = {"loss": d._trackers["loss"].result(), "ce": d._trackers["ce"].result(),
            "accuracy": d._accuracy.result()}
    compiled = getattr(d, "_compile_metrics", None)
    if compiled is not None:
        compiled.update_state(y, logits)
        logs.update(compiled.result())
    return logs
