"""Runs the tiny training run of `reliability_support` with one fault injected.

    python fault_driver.py WORKDIR --kill_at=EPOCH:STEP     # SIGKILL after that step
    python fault_driver.py WORKDIR --kill_in_save=EPOCH     # SIGKILL while that epoch's
                                                            # checkpoint is half written
    ... --jit_compile                                       # the same with XLA

Epochs and steps count from 1. The run goes through `experiments/common.run_cli`,
as `experiments/train.py` does. Used by `test_resume.py` in a fresh process.
"""

import argparse
import os
import signal
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "experiments"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("workdir")
    parser.add_argument("--kill_at", default=None)
    parser.add_argument("--kill_in_save", type=int, default=None)
    parser.add_argument("--jit_compile", action="store_true")
    args = parser.parse_args()

    import keras

    import common
    from kdkeras.distill import Distiller
    from kdkeras.training import checkpoints
    from kdkeras.training.runs import train_model
    from reliability_support import tiny_config, tiny_splits

    if args.kill_at:
        epoch, step = (int(v) for v in args.kill_at.split(":"))

        class KillAt(keras.callbacks.Callback):
            def on_epoch_begin(self, e, logs=None):
                self.epoch = e + 1

            def on_train_batch_end(self, batch, logs=None):
                if (self.epoch, batch + 1) == (epoch, step):
                    print(f"driver: SIGKILL at epoch {epoch}, step {step}", flush=True)
                    os.kill(os.getpid(), signal.SIGKILL)

        fit = Distiller.fit

        def fit_with_fault(self, *a, callbacks=None, **kw):
            return fit(self, *a, callbacks=list(callbacks or []) + [KillAt()], **kw)

        Distiller.fit = fit_with_fault

    if args.kill_in_save:
        target = f"epoch-{args.kill_in_save:04d}.weights.h5"
        replace = os.replace

        def replace_or_die(src, dst):
            if Path(dst).name == target:  # the temporary file is written, not yet renamed
                print(f"driver: SIGKILL while saving {target}", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
            return replace(src, dst)

        checkpoints.os.replace = replace_or_die

    config = tiny_config(args.workdir, jit_compile=args.jit_compile)
    common.run_cli(lambda: train_model(config, tiny_splits()))


if __name__ == "__main__":
    main()
