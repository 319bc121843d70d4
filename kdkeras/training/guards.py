"""Guards of a training run in a run directory: a non-finite loss term, and SIGINT/SIGTERM.

Both stop a run the same way: they set `model.stop_training`, so Keras ends the
epoch after the current batch, and `EpochCheckpoint` (which saves only complete
epochs) leaves the last good checkpoint as it was. After `fit` returns, the
trainer calls `raise_if_stopped()`, which raises a `TrainingStopped` naming
what happened, where, and how to continue; `experiments/common.run_cli` prints
it as one line and exits with its `exit_code`.

- `NonFiniteGuard` is the Distiller's guard (`kdkeras.distill.nonfinite`: "stop"
  names the term, epoch and step; "skip" skips and counts such steps), whose
  message here also says where the last good checkpoint is and which flag skips.
- `SignalStop` turns the first SIGINT or SIGTERM into a stop after the current
  batch; a second one stops at once (SIGINT: `KeyboardInterrupt`).
"""

from __future__ import annotations

import signal
import sys
import threading

import keras

from kdkeras.distill import nonfinite
from kdkeras.distill.nonfinite import (  # noqa: F401 - re-exported
    LOSS_TERMS, NONFINITE_POLICIES, OTHER_CHECKED, SKIP_FLAG_NAMES, NonFiniteLossError,
    SkipState, TrainingStopped, check_policy)


class TrainingInterrupted(TrainingStopped):
    """SIGINT or SIGTERM asked the run to stop."""

    def __init__(self, message: str, *, signum: int, epoch: int, step: int):
        super().__init__(message)
        self.signum, self.epoch, self.step = signum, epoch, step
        self.exit_code = 128 + int(signum)


class NonFiniteGuard(nonfinite.NonFiniteGuard):
    """The Distiller's non-finite guard for a run directory (see the module docstring).

    Args:
      policy: `"stop"` (default) or `"skip"`.
      max_consecutive_skips: with `"skip"`, stop after this many skipped steps in a row.
      run_dir: named in the messages (where the last good checkpoint is).
    """

    def __init__(self, policy: str = "stop", max_consecutive_skips: int = 10, run_dir=None):
        super().__init__(policy, max_consecutive_skips)
        self.run_dir = run_dir

    def where_to_continue(self) -> str:
        return _last_checkpoint_text(self.run_dir)

    def advice(self) -> str:
        return ("Lower --learning_rate, check the data and the teachers, or pass "
                "--on_nonfinite=skip to skip such steps.")


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
