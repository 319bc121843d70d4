"""The Distiller's train step on the TensorFlow backend: two gradients from one tape.

Everything else (loss terms, the β rule, weight decay, metrics) is shared and
lives in `Distiller`/`beta`; here TensorFlow takes ∇CE and ∇KD its own way, and
makes the step give, on R replicas of a `tf.distribute` strategy, what one
device gives on the same global batch:

1. each replica's losses are its local means, so they are scaled by 1/R and the
   gradients summed over replicas (the global-batch mean);
2. ∇CE and ∇KD are all-reduced *before* the β rule: τ = ‖∇CE‖/‖∇KD‖ is a ratio
   of global-batch norms, not of each replica's (a norm of a sum is not a sum
   of norms), and the coupled weight decay λ·W is added once, after the
   reduction;
3. the combined gradient, now the same on every replica, is handed to the
   optimizer divided by R: Keras 3's TensorFlow optimizer all-reduces whatever
   it gets with SUM in a replica context and has no switch to skip that (its
   cross-replica path ends in a `merge_call` on a missing replica context, so
   calling it through `merge_call` fails), and the sum of R copies of g/R is g
   (exactly, for R a power of two). The price is one redundant all-reduce;
4. the student's BatchNorm layers use the global batch's statistics
   (`synchronized=True` while the step is traced), as one device would.

Mixed precision: losses and Gram matrices are float32 (`compute_terms` casts);
with a `LossScaleOptimizer` the two losses are scaled for their backward pass
and their gradients unscaled before β, so τ and λ·W see true values.
"""

from __future__ import annotations

import contextlib

import keras
import tensorflow as tf

from kdkeras.training.strategy import on_cpu_replicas


@contextlib.contextmanager
def synchronized_batch_norm(model: keras.Model, enabled: bool = True):
    """Makes `model`'s BatchNorm layers all-reduce their batch statistics inside the block."""
    layers = [layer for layer in model._flatten_layers(include_self=False)
              if isinstance(layer, keras.layers.BatchNormalization)] if enabled else []
    saved = [layer.synchronized for layer in layers]
    for layer in layers:
        layer.synchronized = True
    try:
        yield
    finally:
        for layer, value in zip(layers, saved):
            layer.synchronized = value


def _all_reduce_sum(ctx, grads):
    """Sums a list of per-replica gradients (None entries stay None) over replicas."""
    present = [i for i, g in enumerate(grads) if g is not None]
    if not present:
        return grads
    reduced = ctx.all_reduce(tf.distribute.ReduceOp.SUM, [grads[i] for i in present])
    out = list(grads)
    for i, g in zip(present, reduced):
        out[i] = g
    return out


def _apply_global(optimizer, grads, variables, replicas):
    """Applies `grads`, already the global-batch gradient on every replica, once."""
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        # It unscales what it is given and skips steps with non-finite gradients.
        factor = optimizer.dynamic_scale / replicas
        grads = [g * tf.cast(factor, g.dtype) for g in grads]
    elif replicas > 1:
        grads = [g / replicas for g in grads]
    optimizer.apply(grads, variables)


def _check_xla(d, strategy):
    if d.jit_compile is True and on_cpu_replicas(strategy):
        raise ValueError(
            "jit_compile=True does not run under MirroredStrategy on CPU devices (XLA fails "
            "with 'Trying to access resource ... located in device CPU:1'). Compile with "
            "jit_compile=False (kdkeras.training.strategy.resolve_jit_compile does it).")


def train_step(d, data):
    x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
    strategy = tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    ctx = tf.distribute.get_replica_context()
    _check_xla(d, strategy)
    optimizer = d.optimizer
    loss_scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    # Teachers run in inference mode outside the tape: no activations are kept
    # for a backward pass that never reaches them.
    teacher_outputs = d.teacher_outputs(x)
    variables = d.trainable_variables
    with tf.GradientTape(persistent=d.has_kd) as tape:
        with synchronized_batch_norm(d.student, enabled=replicas > 1):
            student_outputs = d.student_outputs(x, training=True)
        terms = d.compute_terms(y, student_outputs, teacher_outputs)
        # Local means / R: the sum over replicas is the global-batch mean.
        ce_side = terms["ce_side"] / replicas
        kd_side = terms["kd_side"] / replicas
        if loss_scaled:
            ce_side, kd_side = optimizer.scale_loss(ce_side), optimizer.scale_loss(kd_side)
    ce_grads = tape.gradient(ce_side, variables)
    kd_grads = tape.gradient(kd_side, variables) if d.has_kd else [None] * len(variables)
    del tape
    if loss_scaled:
        inv = 1.0 / optimizer.dynamic_scale
        ce_grads = [None if g is None else g * tf.cast(inv, g.dtype) for g in ce_grads]
        kd_grads = [None if g is None else g * tf.cast(inv, g.dtype) for g in kd_grads]
    if replicas > 1:
        ce_grads = _all_reduce_sum(ctx, ce_grads)
        kd_grads = _all_reduce_sum(ctx, kd_grads)
    grads, beta_logs = d.combine(ce_grads, kd_grads, variables)
    grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]
    _apply_global(optimizer, grads, variables, replicas)
    return d.update_metrics(terms, y, beta_logs)
