"""The TensorFlow half of the Distiller's train step: ∇CE and ∇KD from one tape.

`kdkeras.distill.steps` holds the step (loss sides, β, weight decay, loss-scale
unscaling, logs); here TensorFlow takes the two gradients and applies the
update, and makes the step give, on R replicas of a `tf.distribute` strategy,
what one device gives on the same global batch:

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

Teacher outputs computed ahead of the step (e.g. by int8 TFLite teachers in the
input pipeline, `kdkeras.distill.teacher_outputs`) come in the batch as
`({"image": x, "teacher_outputs": ((logits, taps...), ...)}, y)`; the step then
runs no teacher.
"""

from __future__ import annotations

import contextlib

import keras
import tensorflow as tf

from kdkeras.distill import steps
from kdkeras.utils.tf_runtime import on_cpu_replicas


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
    present = [g for g in grads if g is not None]
    if not present:
        return grads
    reduced = iter(ctx.all_reduce(tf.distribute.ReduceOp.SUM, present))
    return [None if g is None else next(reduced) for g in grads]


def _apply_global(optimizer, grads, variables, replicas):
    """Applies `grads`, already the global-batch gradient on every replica, once."""
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        # It unscales what it is given and skips steps with non-finite gradients.
        factor = optimizer.dynamic_scale / replicas
        grads = [g * tf.cast(factor, g.dtype) for g in grads]
    elif replicas > 1:
        grads = [g / replicas for g in grads]
    optimizer.apply(grads, variables)


class TensorFlowStep:
    """The TensorFlow half of `steps.distillation_step`: a tape, all-reduces, `apply`."""

    def __init__(self, d):
        self.d = d
        strategy = tf.distribute.get_strategy()
        if d.jit_compile is True and on_cpu_replicas(strategy):
            raise ValueError(
                "jit_compile=True does not run under MirroredStrategy on CPU devices (XLA fails "
                "with 'Trying to access resource ... located in device CPU:1'). Compile with "
                "jit_compile=False (kdkeras.training.strategy.resolve_jit_compile does it).")
        self.replicas = strategy.num_replicas_in_sync
        self.ctx = tf.distribute.get_replica_context()
        optimizer = d.optimizer
        self.loss_scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        if not optimizer.built:
            # What `apply` would do on the first step, done first: a loss-scale
            # optimizer's `dynamic_scale` must exist before the losses are scaled
            # (unbuilt, `scale_loss` would bake its initial scale into the graph).
            optimizer.build(d.trainable_variables)
        self.loss_scale = optimizer.dynamic_scale if self.loss_scaled else None
        # on_nonfinite="skip": the forward pass updates BatchNorm statistics; keep
        # their values so that a skipped step can put them back.
        self.kept = ([(v, tf.identity(v.value)) for v in d.student.non_trainable_variables]
                     if d.nonfinite_skip is not None else [])

    def two_gradients(self, loss_sides, split):
        variables = self.d.trainable_variables
        with tf.GradientTape(persistent=split) as tape:
            with synchronized_batch_norm(self.d.student, enabled=self.replicas > 1):
                (ce_side, kd_side), terms = loss_sides()
            total = ce_side + kd_side   # inside the tape: the one-gradient path differentiates it
        if not split:
            return tape.gradient(total, variables), [None] * len(variables), terms
        ce_grads, kd_grads = tape.gradient(ce_side, variables), tape.gradient(kd_side, variables)
        del tape   # a persistent tape holds its activations until deleted
        return ce_grads, kd_grads, terms

    def all_reduce(self, grads):
        return _all_reduce_sum(self.ctx, grads) if self.replicas > 1 else grads

    def apply(self, grads, terms, record):
        d, variables = self.d, self.d.trainable_variables
        if d.nonfinite_skip is None:
            _apply_global(d.optimizer, grads, variables, self.replicas)
            return record()
        finite = _apply_if_finite(d.nonfinite_skip, d.optimizer, grads, variables, self.replicas,
                                  self.ctx, terms, self.kept, check_grads=not self.loss_scaled)
        return tf.cond(finite, record, lambda: steps.metric_logs(d))


def stateful_train_step(d, data):
    x, y, teacher_outputs = steps.batch_inputs(d, data)
    return steps.distillation_step(d, x, y, teacher_outputs, TensorFlowStep(d))


def _apply_if_finite(skip, optimizer, grads, variables, replicas, ctx, terms, kept,
                     check_grads):
    """Applies the update only if the loss terms (and gradients) are finite; returns that.

    A skipped step leaves the weights, the optimizer's slots and its step counter
    as they were, and puts back the values `kept` ((variable, value) pairs: the
    BatchNorm statistics before the forward pass). `skip`
    (a `kdkeras.distill.nonfinite.SkipState`) counts it and
    keeps a bitmask of the non-finite entries: ce, kl, feature, gradients. With a
    LossScaleOptimizer, non-finite gradients are its own business (it skips the
    step and lowers its scale), so only the loss terms are checked.
    """
    flags = [tf.reduce_all(tf.math.is_finite(terms[n])) for n in ("ce", "kl", "feature")]
    flags.append(tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])
                 if check_grads else tf.constant(True))
    bad = tf.cast(tf.logical_not(tf.stack(flags)), tf.int32)
    if replicas > 1:  # One verdict for all replicas: a bad term on any of them counts.
        bad = tf.minimum(ctx.all_reduce(tf.distribute.ReduceOp.SUM, bad), 1)
    finite = tf.equal(tf.reduce_sum(bad), 0)
    skip.record(finite, tf.reduce_sum(bad * tf.constant([1, 2, 4, 8], tf.int32)))

    def apply():
        _apply_global(optimizer, grads, variables, replicas)
        return tf.constant(True)

    def put_back():
        for v, value in kept:
            v.assign(value)
        return tf.constant(False)

    if replicas == 1:
        tf.cond(finite, apply, put_back)
        return finite
    tf.cond(finite, lambda: tf.constant(True), put_back)

    def cross_replica(strategy, grads, finite):
        # A cond whose branch calls merge_call (optimizer.apply does) must run in a
        # cross-replica context, as Keras's LossScaleOptimizer does it.
        def apply_all():
            strategy.extended.call_for_each_replica(
                _apply_global, args=(optimizer, grads, variables, replicas))
            return tf.constant(True)

        tf.cond(strategy.experimental_local_results(finite)[0], apply_all,
                lambda: tf.constant(False))

    ctx.merge_call(cross_replica, args=(grads, finite))
    return finite
