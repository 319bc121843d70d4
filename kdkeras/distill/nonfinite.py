"""A NaN or Inf loss stops `Distiller.fit`, naming the term, and leaves no NaN student.

`Distiller.fit` adds a `NonFiniteGuard` unless the callbacks hold one.
The guard reads the step's logs after every batch and, at the first NaN or Inf,

1. names the loss term (`ce`, `kl`, `feature`, the total `loss`, or a gradient
   norm), the epoch and the step (both 1-based, as Keras prints epochs);
2. puts back the student's weights of the start of that epoch (the bad step has
   already written NaN into them), before any other callback's `on_epoch_end`
   can save them (e.g. `keras.callbacks.ModelCheckpoint`);
3. sets `model.stop_training`; `Distiller.fit` then raises the
   `NonFiniteLossError`, so code after `fit` (a `student.save(...)`) never runs
   on a diverged student.

`Distiller.compile(..., on_nonfinite="skip")` instead makes the Distiller's train
step check its loss terms and gradients and apply the update only when all are
finite (the optimizer, its momentum and its step counter are left untouched
otherwise, and the step is left out of the epoch's running means). Each skipped step is
reported by name and counted (`skipped_steps` in the epoch's logs) by the
guard, `NonFiniteGuard("skip")`, which reads the counts from the Distiller's
`nonfinite_skip`; after `max_consecutive_skips` skipped steps in a row the run
stops as with "stop".

Run directories (`kdkeras.training.guards.NonFiniteGuard`) add where the last
good checkpoint is and how to resume.
"""

from __future__ import annotations

import math
import sys

import keras
import numpy as np

NONFINITE_POLICIES = ("stop", "skip")
# Checked in this order; the first non-finite entries are the ones named.
LOSS_TERMS = ("ce", "kl", "feature")
OTHER_CHECKED = ("loss", "ce_grad_norm", "kd_grad_norm")
# The flags the skipping train step records, in bit order (see `SkipState`).
SKIP_FLAG_NAMES = ("ce", "kl", "feature", "gradients")


class TrainingStopped(RuntimeError):
    """A guard stopped the run; the message says why and how to continue."""

    exit_code = 1


class NonFiniteLossError(TrainingStopped):
    """A loss term (or gradient) became NaN or Inf."""

    def __init__(self, message: str, *, terms, epoch: int, step: int):
        super().__init__(message)
        self.terms, self.epoch, self.step = tuple(terms), epoch, step


def check_policy(policy: str) -> str:
    if policy not in NONFINITE_POLICIES:
        raise ValueError(
            f"on_nonfinite must be one of {NONFINITE_POLICIES}. Received: on_nonfinite={policy!r}.")
    return policy


class SkipState:
    """What the skipping train step records: steps skipped, and why the last one was.

    Plain `tf.Variable`s outside Keras's tracking (never checkpointed); `flags` is a
    bitmask over `SKIP_FLAG_NAMES` (bit i set: that entry was non-finite).
    """

    def __init__(self, strategy):
        import tensorflow as tf

        with strategy.scope():
            agg = tf.VariableAggregation.ONLY_FIRST_REPLICA
            self.skipped = tf.Variable(0, dtype=tf.int64, trainable=False, aggregation=agg)
            self.flags = tf.Variable(0, dtype=tf.int32, trainable=False, aggregation=agg)

    def record(self, finite, flags):
        """Called inside the train step: counts a skipped step and keeps its flags."""
        import tensorflow as tf

        self.skipped.assign_add(tf.cast(tf.logical_not(finite), tf.int64))
        self.flags.assign(tf.where(finite, self.flags, flags))


def _is_finite(value) -> bool:
    try:
        return bool(np.all(np.isfinite(np.asarray(value, dtype=np.float64))))
    except (TypeError, ValueError):
        return True


def _describe(value) -> str:
    v = float(np.asarray(value, dtype=np.float64).reshape(-1)[0])
    return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")


def _quote(names) -> str:
    return " and ".join(repr(n) for n in names)


def _guarded_weights(model) -> list:
    """The variables a stop puts back: the student's (and adapters') for a Distiller."""
    student = getattr(model, "student", None)
    if student is None:
        return list(model.weights)
    return list(student.weights) + [w for a in getattr(model, "adapters", []) for w in a.weights]


class NonFiniteGuard(keras.callbacks.Callback):
    """Stops training at (or, by option, skips) a step whose loss is NaN or Inf.

    Args:
      policy: `"stop"` (default) or `"skip"` (see the module docstring).
      max_consecutive_skips: with `"skip"`, stop after this many skipped steps in a row.
    """

    def __init__(self, policy: str = "stop", max_consecutive_skips: int = 10):
        super().__init__()
        self.policy = check_policy(policy)
        self.max_consecutive_skips = int(max_consecutive_skips)
        self.stopped = None  # a NonFiniteLossError once the guard stopped the run
        self.skipped_total = 0
        self._skip = None
        self._epoch = 0
        self._epoch_start = None

    # --- what a stop says (run directories add their checkpoint) -------------------
    def where_to_continue(self) -> str:
        return ("The student's weights are back to those of the start of this epoch. ")

    def advice(self) -> str:
        return ("Check that the inputs are what the models take, lower the learning rate, "
                "or compile with on_nonfinite='skip' to skip such steps.")

    # --- set-up -------------------------------------------------------------------
    def set_model(self, model):
        super().set_model(model)
        if self.policy == "skip" and not hasattr(type(model), "nonfinite_skip"):
            raise ValueError(
                "on_nonfinite='skip' needs a kdkeras Distiller (its train step does the "
                f"skipping). Received: a {type(model).__name__}.")
        compiled = getattr(model, "on_nonfinite", "stop")
        if compiled != self.policy:
            # The step skips only what compile asked for, and only this guard reports it.
            raise ValueError(
                f"NonFiniteGuard({self.policy!r}) needs a Distiller compiled with "
                f"on_nonfinite={self.policy!r}. Received: on_nonfinite={compiled!r}. "
                f"Call distiller.compile(..., on_nonfinite={self.policy!r}).")
        self._skip = model.nonfinite_skip if self.policy == "skip" else None

    def on_train_begin(self, logs=None):
        self.stopped = None
        if self._skip is not None:
            # The step applies the optimizer inside a tf.cond: its slots must exist first.
            optimizer = self.model.optimizer
            if not optimizer.built:
                optimizer.build(self.model.trainable_variables)
            self._seen = int(self._skip.skipped.numpy())
            self._consecutive = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch + 1
        self._epoch_skips = 0
        if self._skip is None:
            # Kept to put back on a stop: one copy of the student per epoch.
            self._epoch_start = [np.array(w.numpy()) for w in _guarded_weights(self.model)]

    # --- per batch ----------------------------------------------------------------
    def on_train_batch_end(self, batch, logs=None):
        step = batch + 1
        if self._skip is not None:
            self._check_skipped(step)
            return
        logs = logs or {}
        bad = [n for n in LOSS_TERMS if n in logs and not _is_finite(logs[n])]
        if not bad:
            bad = [n for n in OTHER_CHECKED if n in logs and not _is_finite(logs[n])]
        if bad:
            if self._epoch_start is not None:
                for w, value in zip(_guarded_weights(self.model), self._epoch_start):
                    w.assign(value)
            values = ", ".join(f"{n}={_describe(logs[n])}" for n in bad)
            self._stop(bad, step, f"Non-finite loss term {_quote(bad)} ({values})")

    def _check_skipped(self, step):
        total = int(self._skip.skipped.numpy())
        if total == self._seen:
            self._consecutive = 0
            return
        self._seen = total
        self.skipped_total += 1
        self._epoch_skips += 1
        self._consecutive += 1
        flags = int(self._skip.flags.numpy())
        flagged = [n for i, n in enumerate(SKIP_FLAG_NAMES) if flags >> i & 1]
        # A NaN term makes NaN gradients too: name the term, the gradients only alone.
        bad = [n for n in flagged if n in LOSS_TERMS] or flagged or ["loss"]
        print(f"kdkeras: skipped epoch {self._epoch}, step {step}: non-finite {_quote(bad)} "
              f"(no update applied; {self.skipped_total} skipped so far).",
              file=sys.stderr, flush=True)
        if self._consecutive >= self.max_consecutive_skips:
            self._stop(bad, step, f"{self._consecutive} steps in a row had a non-finite "
                                  f"{_quote(bad)} and were skipped")

    def _stop(self, terms, step, what):
        where = f"at epoch {self._epoch}, step {step}"
        steps = (self.params or {}).get("steps")
        if steps:
            where += f" of {steps}"
        message = f"{what} {where}; training stopped. {self.where_to_continue()}{self.advice()}"
        self.stopped = NonFiniteLossError(message, terms=terms, epoch=self._epoch, step=step)
        self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self._skip is not None and logs is not None:
            logs["skipped_steps"] = self._epoch_skips

    def raise_if_stopped(self):
        if self.stopped is not None:
            raise self.stopped
