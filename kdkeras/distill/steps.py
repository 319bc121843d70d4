"""The Distiller's train step, written once for both backends.

A step takes the batch's teacher outputs (run here in inference mode, or
computed ahead and carried in the batch: `kdkeras.distill.teacher_outputs`),
runs the student, composes the loss terms (`Distiller.compute_terms`) and then:

1. takes ∇CE and ∇KD apart when the β rule needs them (two backward passes),
   or, with β off (Hinton KD, FSP, RKD, the ablations without β), where the
   split changes nothing in the update, one gradient of the whole loss;
2. unscales them when a `LossScaleOptimizer` scaled the losses for the backward
   pass, so that τ and λ·W see true values;
3. applies the β rule and the coupled weight decay λ·W (`beta.combine_gradients`),
   fills the gradients of variables that no loss reached with zeros, and, on
   the one-gradient path, logs that gradient's norm as `ce_grad_norm` with
   `kd_grad_norm` = τ = 0 and β = `kd_scale` = 1;
4. hands the gradients to the backend's "apply" and records the metrics.

A backend (`steps_tf.TensorFlowStep`, `steps_jax.JaxStep`) supplies only what
differs: `two_gradients` (a TensorFlow tape, or one JAX VJP pulled back twice),
`all_reduce` (the sum over `tf.distribute` replicas before β; JAX arrays are
already global), and `apply` (which also decides, for `on_nonfinite="skip"`,
whether the update happens). Each backend module is imported on first use, so
importing kdkeras under one backend never imports the other's framework.

The two backends' trainers call the steps differently: TensorFlow's calls
`train_step(data)` and lets it assign the variables; JAX's calls the stateless
`train_step(state, data)` and expects `(logs, new_state)` back. Both forms are
accepted; `train_step(data)` on JAX (a direct call, e.g. in a test or a custom
loop) runs the stateless step and assigns its result.
"""

from __future__ import annotations

import keras
from keras import ops

from kdkeras.distill.beta import combine_gradients
from kdkeras.distill.teacher_outputs import split_batch


def _backend() -> str:
    backend = keras.backend.backend()
    if backend not in ("tensorflow", "jax"):
        raise NotImplementedError(
            "The Distiller's steps support the TensorFlow and JAX backends. "
            f"Received: backend={backend!r}.")
    return backend


def train_step(distiller, *args):
    """`train_step(data)` (TensorFlow; direct calls on JAX) or `train_step(state, data)` (JAX)."""
    if _backend() == "tensorflow":
        from kdkeras.distill import steps_tf

        return steps_tf.train_step(distiller, *args)
    from kdkeras.distill import steps_jax

    if len(args) == 1:
        return steps_jax.stateful_train_step(distiller, *args)
    return steps_jax.train_step(distiller, *args)


def test_step(distiller, *args):
    """`test_step(data)`, or `test_step(state, data)` as Keras's JAX trainer calls it."""
    if len(args) == 1:
        return student_test_step(distiller, *args)
    if _backend() != "jax":
        raise ValueError("test_step(state, data) is the JAX trainer's form; "
                         f"the {keras.backend.backend()} backend calls test_step(data).")
    from kdkeras.distill import steps_jax

    return steps_jax.test_step(distiller, *args)


# --- the step ---------------------------------------------------------------------
def takes_two_gradients(d) -> bool:
    """Whether the step takes ∇CE and ∇KD apart: only the β rule needs them apart."""
    return d.has_kd and d.config.beta_mode != "off"


def batch_inputs(d, data):
    """`(x, y, teacher_outputs)`: the teachers' outputs from the batch or run here."""
    x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
    # Teachers run in inference mode, before (and outside) any gradient, unless
    # their outputs came with the batch, computed ahead (teacher_outputs.py).
    x, precomputed = split_batch(x)
    if precomputed is not None and d.has_kd:
        return x, y, _checked_precomputed(d, precomputed)
    return x, y, d.teacher_outputs(x)


def _checked_precomputed(d, outputs):
    """Teacher outputs from the batch, checked against what the Distiller's teachers give."""
    expected = [len(view.outputs) for view in d.teacher_views]
    got = [len(o) for o in outputs]
    if got != expected:
        raise ValueError(
            "The batch's teacher_outputs do not match the Distiller's teachers: expected "
            f"{len(expected)} teachers with {expected} outputs each ([logits, taps...]), got "
            f"{got}. Build each TFLiteTeacher with the taps the method reads (taps=True).")
    return outputs


def distillation_step(d, x, y, teacher_outputs, backend):
    """One train step of `d` on `(x, y)`; `backend` takes the gradients and applies them.

    Returns what `backend.apply` returns (the logs on TensorFlow, `(logs,
    new_state)` on JAX). `backend` has `replicas` (the losses are divided by
    it: the sum over replicas is the global-batch mean), `loss_scale` (None,
    or the `LossScaleOptimizer`'s current scale) and the methods
    `two_gradients(loss_sides, split)`, `all_reduce(grads)` and
    `apply(grads, terms, record)`.
    """
    split = takes_two_gradients(d)
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
    grads, beta_logs = combine_gradients(
        ce_grads, kd_grads, weight_decay_gradients(variables, d.weight_decay),
        d.epoch + float(d.config.epoch_origin), mode=d.config.beta_mode,
        num_student_vars=d._num_student_vars)
    if d.has_kd and not split:
        # One gradient: its norm is logged as ce_grad_norm; no split, so no τ.
        one = ops.ones_like(beta_logs["beta"])
        beta_logs = {**beta_logs, "tau": 0.0 * one, "beta": one, "kd_scale": one}
    grads = [ops.zeros(v.shape, v.dtype) if g is None else g for g, v in zip(grads, variables)]
    return backend.apply(grads, terms, lambda: record_metrics(d, terms, y, beta_logs))


def weight_decay_gradients(variables, weight_decay: float) -> list:
    """λ·W for every kernel (coupled L2 weight decay), None elsewhere."""
    if not weight_decay:
        return [None] * len(variables)
    return [weight_decay * v.value if v.path.endswith("kernel") else None for v in variables]


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
        if isinstance(value, dict):
            logs.update(value)
        else:
            logs[m.name] = value
    return logs


def student_test_step(d, data) -> dict:
    """`test_step(data)`: the student alone, its CE and accuracy (and compiled metrics)."""
    x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
    logits = ops.cast(d.student(x, training=False), "float32")
    ce = ops.mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
    d._trackers["ce"].update_state(ce)
    d._trackers["loss"].update_state(ce)
    d._accuracy.update_state(y, logits)
    logs = {"loss": d._trackers["loss"].result(), "ce": d._trackers["ce"].result(),
            "accuracy": d._accuracy.result()}
    if getattr(d, "_compile_metrics", None) is not None:
        d._compile_metrics.update_state(y, logits)
        logs.update(d._compile_metrics.result())
    return logs
