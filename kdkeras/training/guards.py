"""Guards of a training run: a non-finite loss term, and SIGINT/SIGTERM.

Both stop a run the same way: they set `model.stop_training`, so Keras ends the
epoch after the current batch, and `EpochCheckpoint` (which saves only complete
epochs) leaves the last good checkpoint as it was. After `fit` returns, the
trainer calls `raise_if_stopped()`, which raises a `TrainingStopped` naming
what happened, where, and how to continue; `experiments/common.run_cli` prints
it as one line and exits with its `exit_code`.

- `NonFiniteGuard(policy="stop")` reads the step's logs after every batch and
  stops at the first NaN or Inf, naming the loss term (`ce`, `kl`, `feature`,
  the total `loss`, or a gradient norm), the epoch and the step (both 1-based, as
  Keras prints epochs).
- `NonFiniteGuard(policy="skip")` makes the Distiller's train step check its
  loss terms and gradients and apply the update only when all are finite (the
  optimizer, its momentum and its step counter are left untouched otherwise,
  and the step is left out of the epoch's running means). Each skipped step is
  reported by name and counted (`skipped_steps` in the epoch's logs); after
  `max_consecutive_skips` skipped steps in a row the run stops as with "stop".
- `SignalStop` turns the first SIGINT or SIGTERM into a stop after the current
  batch; a second one stops at once (SIGINT: `KeyboardInterrupt`).
"""

from __future__ import annotations

import math
import signal
import sys
import threading

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


class TrainingInterrupted(TrainingStopped):
    """SIGINT or SIGTERM asked the run to stop."""

    def __init__(self, message: str, *, signum: int, epoch: int, step: int):
        super().__init__(message)
        self.signum, self.epoch, self.step = signum, epoch, step
        self.exit_code = 128 + int(signum)


def check_policy(policy: str) -> str:
    if policy not in NONFINITE_POLICIES:
        raise ValueError(
            f"on_nonfinite must be one of {NONFINITE_POLICIES}. Received: on_nonfinite={policy!r}.")
    return policy


class SkipState:
    """What the skipping train step records: steps skipped, and why the last one was.

    Plain `tf.Variable`s held outside Keras's tracking, so they are never saved
    in a checkpoint. `flags` is a bitmask over `SKIP_FLAG_NAMES` (bit i set: that
    entry was non-finite).
    """

    def __init__(self, strategy=None):
        import tensorflow as tf

        scope = strategy.scope() if strategy is not None else _null_scope()
        with scope:
            agg = tf.VariableAggregation.ONLY_FIRST_REPLICA
            self.skipped = tf.Variable(0, dtype=tf.int64, trainable=False, aggregation=agg)
            self.flags = tf.Variable(0, dtype=tf.int32, trainable=False, aggregation=agg)

    def record(self, finite, flags):
        """Called inside the train step: counts a skipped step and keeps its flags."""
        import tensorflow as tf

        self.skipped.assign_add(tf.cast(tf.logical_not(finite), tf.int64))
        self.flags.assign(tf.where(finite, self.flags, flags))


class _null_scope:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


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


class NonFiniteGuard(keras.callbacks.Callback):
    """Stops the run at (or, by option, skips) a step whose loss is NaN or Inf.

    Args:
      policy: `"stop"` (default) or `"skip"` (see the module docstring).
      max_consecutive_skips: with `"skip"`, stop after this many skipped steps in a row.
      run_dir: named in the messages (where the last good checkpoint is).
    """

    def __init__(self, policy: str = "stop", max_consecutive_skips: int = 10, run_dir=None):
        super().__init__()
        self.policy = check_policy(policy)
        self.max_consecutive_skips = int(max_consecutive_skips)
        self.run_dir = run_dir
        self.stopped = None  # a NonFiniteLossError once the guard stopped the run
        self.skipped_total = 0
        self._skip = None

    # --- set-up -------------------------------------------------------------------
    def set_model(self, model):
        super().set_model(model)
        if self.policy == "skip" and getattr(model, "nonfinite_skip", None) is None:
            if not hasattr(type(model), "nonfinite_skip"):
                raise ValueError(
                    "on_nonfinite='skip' needs a kdkeras Distiller (its train step does the "
                    f"skipping). Received: a {type(model).__name__}.")
            if keras.backend.backend() != "tensorflow":
                raise ValueError(
                    "on_nonfinite='skip' is implemented in the TensorFlow train step only. "
                    f"Received: backend={keras.backend.backend()!r}; use on_nonfinite='stop'.")
            strategy = getattr(model, "distribute_strategy", None)
            object.__setattr__(model, "nonfinite_skip", SkipState(strategy))
            model.train_function = None  # retrace the step with the check in it
        self._skip = getattr(model, "nonfinite_skip", None) if self.policy == "skip" else None

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
        ckpt = _last_checkpoint_text(self.run_dir)
        message = (f"{what} {where}; training stopped. {ckpt}"
                   "Lower --learning_rate, check the data and the teachers, or pass "
                   "--on_nonfinite=skip to skip such steps.")
        self.stopped = NonFiniteLossError(message, terms=terms, epoch=self._epoch, step=step)
        self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self._skip is not None and logs is not None:
            logs["skipped_steps"] = self._epoch_skips

    def raise_if_stopped(self):
        if self.stopped is not None:
            raise self.stopped


class SignalStop(keras.callbacks.Callback):
    """Turns SIGINT/SIGTERM into a stop after the current batch (the main thread only)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, run_dir=None):
        super().__init__()
        self.run_dir = run_dir
        self.received = None
        self._previous = {}
        self._epoch, self._step = 0, 0

    def on_train_begin(self, logs=None):
        self.received = None
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        del frame
        if self.received is not None:  # A second signal: stop now.
            self.restore()
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            signal.raise_signal(signum)
            return
        self.received = signum
        if self.model is not None:
            self.model.stop_training = True
        print(f"\nkdkeras: received {signal.Signals(signum).name}: stopping after the current "
              "batch (send it again to stop at once).", file=sys.stderr, flush=True)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._step = epoch + 1, 0

    def on_train_batch_end(self, batch, logs=None):
        self._step = batch + 1

    def on_train_end(self, logs=None):
        self.restore()

    def restore(self):
        """Puts back the handlers that were there before training."""
        while self._previous:
            sig, handler = self._previous.popitem()
            signal.signal(sig, handler)

    def raise_if_stopped(self):
        if self.received is None:
            return
        name = signal.Signals(self.received).name
        raise TrainingInterrupted(
            f"Stopped by {name} in epoch {self._epoch}, after step {self._step}. "
            f"{_last_checkpoint_text(self.run_dir)}",
            signum=self.received, epoch=self._epoch, step=self._step)


def _last_checkpoint_text(run_dir) -> str:
    if run_dir is None:
        return ""
    from kdkeras.training.checkpoints import CKPT_DIR, list_checkpoints

    found = list_checkpoints(run_dir)
    if not found:
        return (f"No epoch was complete, so {run_dir} holds no checkpoint: --resume "
                "starts again from epoch 1. ")
    epoch, path = found[-1]
    return (f"The last complete epoch ({epoch}) is checkpointed in {run_dir}/{CKPT_DIR}; "
            "continue with --resume. ")
