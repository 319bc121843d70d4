"""The Distiller's train and test steps on the JAX backend: stateless, two gradients from one VJP.

Keras's JAX trainer calls `train_step(state, data)` with the model's state as
arrays, `state = (trainable, non_trainable, optimizer, metrics)` (each a list
of values aligned with `d.trainable_variables`, `d.non_trainable_variables`,
`d.optimizer.variables` and `d.metrics_variables`), and expects
`(logs, new_state)` back; nothing may be assigned in place. Every shared piece
(the loss terms, the β rule, weight decay, the metrics) is the Distiller's own
stateful code, run inside a `keras.StatelessScope` that maps each variable to
its value in `state` and records what would have been assigned.

The two gradients: the student's forward pass runs once, under `jax.vjp`,
returning the pair `(ce_side, kd_side)`; the VJP is then pulled back twice,
with cotangents (1, 0) for ∇CE and (0, 1) for ∇KD. That is one forward and two
backward passes, the same work as the TensorFlow step's persistent tape, where
two `jax.value_and_grad` calls would run the forward pass twice (unless XLA
merged them, which it is not bound to do). The teachers run before, outside
the differentiated function, in inference mode.

The same options as the TensorFlow step (`steps_tf`): with β off the split
changes nothing in the update, so one pull-back with cotangent (1, 1) gives the
gradient of the whole loss (logs: its norm as `ce_grad_norm`, τ = 0, β =
`kd_scale` = 1); with a `LossScaleOptimizer` both sides are scaled for the
backward pass and the gradients unscaled before β. What TensorFlow needs for
`tf.distribute` (1/R scaling, all-reduces before β) has no JAX counterpart:
under a `keras.distribution` the arrays are global, so the norms already are.
`on_nonfinite="skip"` records into TensorFlow variables
(`kdkeras.training.guards.SkipState`) and is refused here.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import keras


def _scope(pairs):
    """A StatelessScope over `(variable, value)` pairs."""
    return keras.StatelessScope(state_mapping=list(pairs))


def _values_after(scope, variables):
    return [scope.get_current_value(v) for v in variables]


def train_step(d, state, data, teacher_outputs=None):
    """One stateless distillation step; `d` is the `Distiller`. Returns `(logs, new_state)`.

    `teacher_outputs`: the teachers' outputs on this batch's `x` (one list of
    logits then taps per teacher, as `d.teacher_outputs(x)` returns), computed
    by the caller; the table engine (`kdkeras.training.table_engine`) runs each
    teacher once per batch for every row that uses it. None: run them here.
    """
    if d.nonfinite_skip is not None:
        raise NotImplementedError(
            "on_nonfinite='skip' counts skipped steps in TensorFlow variables and runs on the "
            "TensorFlow backend only; on JAX use on_nonfinite='stop'.")
    trainable, non_trainable, optimizer_values, metric_values = state
    x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
    optimizer = d.optimizer
    train_vars = d.trainable_variables
    frozen_vars = d.non_trainable_variables  # teachers, BN statistics, the epoch
    frozen = list(zip(frozen_vars, non_trainable))
    current = list(zip(train_vars, trainable)) + frozen
    loss_scale = None
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        with _scope(zip(optimizer.variables, optimizer_values)):
            loss_scale = keras.ops.convert_to_tensor(optimizer.dynamic_scale)

    if teacher_outputs is None:
        with _scope(current):
            teacher_outputs = d.teacher_outputs(x)

    def loss_sides(train_values):
        with _scope(list(zip(train_vars, train_values)) + frozen) as scope:
            student_outputs = d.student_outputs(x, training=True)
            terms = d.compute_terms(y, student_outputs, teacher_outputs)
        # BatchNorm's moving statistics, updated by the training-mode forward pass.
        new_frozen = _values_after(scope, frozen_vars)
        sides = (terms["ce_side"], terms["kd_side"])
        if loss_scale is not None:
            sides = tuple(side * loss_scale.astype(side.dtype) for side in sides)
        return sides, (terms, new_frozen)

    (ce_side, kd_side), pullback, (terms, new_non_trainable) = jax.vjp(
        loss_sides, trainable, has_aux=True)
    one, zero = jnp.ones_like(ce_side), jnp.zeros_like(kd_side)
    # With β off the split changes nothing in the update: one pull-back of the sum.
    split = d.has_kd and d.config.beta_mode != "off"
    if split:
        (ce_grads,) = pullback((one, zero))
        (kd_grads,) = pullback((zero, one))
    else:
        (ce_grads,) = pullback((one, one))
        kd_grads = [None] * len(train_vars)
    ce_grads, kd_grads = list(ce_grads), list(kd_grads)
    if loss_scale is not None:
        ce_grads = [g / loss_scale.astype(g.dtype) for g in ce_grads]
        kd_grads = [None if g is None else g / loss_scale.astype(g.dtype) for g in kd_grads]

    with _scope(current):  # the β rule reads the epoch, weight decay the weights
        grads, beta_logs = d.combine(ce_grads, kd_grads, train_vars)
    if d.has_kd and not split:
        # One gradient: its norm is logged as ce_grad_norm; no split, so no τ.
        ones = jnp.ones_like(beta_logs["beta"])
        beta_logs = {**beta_logs, "tau": 0.0 * ones, "beta": ones, "kd_scale": ones}
    grads = [jnp.zeros_like(v) if g is None else g for g, v in zip(grads, trainable)]
    if loss_scale is not None:
        # The LossScaleOptimizer unscales what it is given and skips non-finite steps.
        grads = [g * loss_scale.astype(g.dtype) for g in grads]
    new_trainable, new_optimizer = optimizer.stateless_apply(optimizer_values, grads, trainable)
    logs, new_metrics = _update_metrics(d, metric_values,
                                        lambda: d.update_metrics(terms, y, beta_logs))
    return logs, (new_trainable, new_non_trainable, new_optimizer, new_metrics)


def test_step(d, state, data):
    """The stateless form of `Distiller.test_step(data)` (the student alone)."""
    trainable, non_trainable, metric_values = state
    model = list(zip(d.trainable_variables, trainable)) + list(zip(d.non_trainable_variables,
                                                                  non_trainable))
    logs, new_metrics = _update_metrics(d, metric_values, lambda: d.test_step(data), model)
    return logs, (trainable, non_trainable, new_metrics)


def _update_metrics(d, metric_values, update, model_pairs=()):
    """Runs the stateful `update()` against `metric_values`; returns its logs and the new values.

    A StatelessScope does not fall back to an enclosing one, so the variables
    `update` reads (`model_pairs`) are mapped in the same scope.
    """
    with _scope(list(model_pairs) + list(zip(d.metrics_variables, metric_values))) as scope:
        logs = update()
    return logs, _values_after(scope, d.metrics_variables)


def stateful_train_step(d, data):
    """`train_step(data)` called directly (tests, custom loops): one step on the live variables.

    Reads the variables' values, runs the stateless step (eagerly) and assigns
    the new state back, so that `distiller.train_step((x, y))` behaves on JAX
    as it does on TensorFlow.
    """
    if not d.optimizer.built:
        d.optimizer.build(d.trainable_variables)
    groups = (d.trainable_variables, d.non_trainable_variables, d.optimizer.variables,
              d.metrics_variables)
    state = tuple([v.value for v in group] for group in groups)
    logs, new_state = train_step(d, state, data)
    for group, values in zip(groups, new_state):
        for variable, value in zip(group, values):
            variable.assign(value)
    return logs
