"""The JAX half of the Distiller's train step: stateless, two gradients from one VJP.

Keras's JAX trainer calls `train_step(state, data)` with the model's state as
arrays, `state = (trainable, non_trainable, optimizer, metrics)` (aligned with
`d.trainable_variables`, `d.non_trainable_variables`, `d.optimizer.variables`
and `d.metrics_variables`), and expects `(logs, new_state)` back. The step
(`kdkeras.distill.steps`) is stateful Keras code, run here inside a
`keras.StatelessScope` that maps each variable to its value in `state` and
records what would have been assigned.

The student's forward pass runs once, under `jax.vjp`, returning `(ce_side,
kd_side)`; the VJP is pulled back with cotangents (1, 0) for ∇CE and (0, 1) for
∇KD (with β off, once with (1, 1)): one forward and two backward passes, as
TensorFlow's persistent tape, where two `jax.value_and_grad` calls would run the
forward pass twice. Under a `keras.distribution` the arrays are global, so
nothing is all-reduced. `on_nonfinite="skip"` is refused by `Distiller.compile`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import keras

from kdkeras.distill import steps


def _scope(pairs):
    """A StatelessScope over `(variable, value)` pairs."""
    return keras.StatelessScope(state_mapping=list(pairs))


def _values_after(scope, variables):
    return [scope.get_current_value(v) for v in variables]


class JaxStep:
    """The JAX half of `steps.distillation_step`: one VJP pulled back twice, a stateless apply."""

    replicas = 1   # under a keras.distribution the arrays are global

    def __init__(self, d, state):
        self.d, self.state = d, state
        trainable, non_trainable, optimizer_values, _ = state
        self.frozen = list(zip(d.non_trainable_variables, non_trainable))
        self.current = list(zip(d.trainable_variables, trainable)) + self.frozen
        self.loss_scale = None
        if isinstance(d.optimizer, keras.optimizers.LossScaleOptimizer):
            with _scope(zip(d.optimizer.variables, optimizer_values)):
                self.loss_scale = keras.ops.convert_to_tensor(d.optimizer.dynamic_scale)

    def two_gradients(self, loss_sides, split):
        train_vars, frozen_vars = self.d.trainable_variables, self.d.non_trainable_variables

        def sides_of(train_values):
            with _scope(list(zip(train_vars, train_values)) + self.frozen) as scope:
                sides, terms = loss_sides()
            # BatchNorm's moving statistics, updated by the training-mode forward pass.
            return sides, (terms, _values_after(scope, frozen_vars))

        (ce_side, kd_side), pullback, (terms, self.new_non_trainable) = jax.vjp(
            sides_of, self.state[0], has_aux=True)
        one, zero = jnp.ones_like(ce_side), jnp.zeros_like(kd_side)
        if split:
            (ce_grads,) = pullback((one, zero))
            (kd_grads,) = pullback((zero, one))
            return list(ce_grads), list(kd_grads), terms
        (grads,) = pullback((one, one))   # the gradient of the sum: the whole loss
        return list(grads), [None] * len(train_vars), terms

    def all_reduce(self, grads):
        return grads

    def apply(self, grads, terms, record):
        trainable, _, optimizer_values, metric_values = self.state
        if self.loss_scale is not None:
            # The LossScaleOptimizer unscales what it is given and skips non-finite steps.
            grads = [g * self.loss_scale.astype(g.dtype) for g in grads]
        new_trainable, new_optimizer = self.d.optimizer.stateless_apply(
            optimizer_values, grads, trainable)
        logs, new_metrics = _update_metrics(self.d, metric_values, record)
        return logs, (new_trainable, self.new_non_trainable, new_optimizer, new_metrics)


def train_step(d, state, data, teacher_outputs=None):
    """One stateless distillation step; `d` is the `Distiller`. Returns `(logs, new_state)`.

    `teacher_outputs`: as `d.teacher_outputs(x)` returns them, computed by the caller
    (the table engine runs each teacher once per batch for all its rows); None: run here.
    """
    backend = JaxStep(d, state)
    # The teachers read their frozen weights, the β rule the epoch, weight decay the weights.
    with _scope(backend.current):
        x, y, teacher_outputs = steps.batch_inputs(d, data, teacher_outputs)
        return steps.distillation_step(d, x, y, teacher_outputs, backend)


def test_step(d, state, data):
    """The stateless form of `test_step(data)` (the student alone)."""
    trainable, non_trainable, metric_values = state
    model = list(zip(d.trainable_variables, trainable)) + list(zip(d.non_trainable_variables,
                                                                  non_trainable))
    logs, new_metrics = _update_metrics(d, metric_values,
                                        lambda: steps.student_test_step(d, data), model)
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
