"""Runs the tiny training run of `reliability_support` with one fault injected.

    python fault_driver.py WORKDIR --kill_at=EPOCH:STEP     # SIGKILL after that step
    python fault_driver.py WORKDIR --kill_in_save=EPOCH     # SIGKILL while that epoch's
                                                            # checkpoint is half written
    python fault_driver.py WORKDIR --kill_at_write=K        # SIGKILL before the K-th file
                                                            # operation (0-based) of epoch 2's
                                                            # checkpoint; K = their count: after
                                                            # the last one
    python fault_driver.py WORKDIR --count_writes           # print those operations, no kill
    ... --keep=1                                            # keep one checkpoint (so that
                                                            # committing one deletes another)
    ... --jit_compile                                       # the same with XLA
    ... --resume                                            # continue the run in WORKDIR

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


def watch_epoch_writes(checkpoints, kill_before):
    """Counts the renames and deletions of epoch 2's checkpoint; SIGKILLs before number `kill_before`.

    Each operation is printed as `driver: write K <op> <name>`. Killing before a
    rename is killing after its temporary file was written in full; `kill_before`
    equal to the count kills once the checkpoint callback has returned.
    """
    ops = []
    active = [False]

    def at_write(op, name):
        if not active[0]:
            return
        if len(ops) == kill_before:
            print(f"driver: SIGKILL before write {len(ops)} ({op} {name})", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        print(f"driver: write {len(ops)} {op} {name}", flush=True)
        ops.append((op, name))

    replace, unlink = os.replace, os.unlink

    def replace_watched(src, dst, *a, **kw):
        at_write("replace", Path(dst).name)
        return replace(src, dst, *a, **kw)

    def unlink_watched(path, *a, **kw):
        if not Path(path).name.startswith("tmp-"):
            at_write("unlink", Path(path).name)
        return unlink(path, *a, **kw)

    os.replace, os.unlink = replace_watched, unlink_watched
    on_epoch_end = checkpoints.EpochCheckpoint.on_epoch_end

    def on_epoch_end_watched(self, epoch, logs=None):
        active[0] = epoch == 1
        try:
            on_epoch_end(self, epoch, logs)
        finally:
            active[0] = False
        if epoch == 1 and kill_before == len(ops):
            print(f"driver: SIGKILL after the last write ({len(ops)})", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

    checkpoints.EpochCheckpoint.on_epoch_end = on_epoch_end_watched


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("workdir")
    parser.add_argument("--kill_at", default=None)
    parser.add_argument("--kill_in_save", type=int, default=None)
    parser.add_argument("--kill_at_write", type=int, default=None)
    parser.add_argument("--count_writes", action="store_true")
    parser.add_argument("--keep", type=int, default=None)
    parser.add_argument("--jit_compile", action="store_true")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--overwrite", action="store_true")
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

    if args.keep is not None:
        init = checkpoints.EpochCheckpoint.__init__

        def init_keeping(self, *a, **kw):
            init(self, *a, **{**kw, "keep": args.keep})

        checkpoints.EpochCheckpoint.__init__ = init_keeping

    if args.kill_at_write is not None or args.count_writes:
        watch_epoch_writes(checkpoints, args.kill_at_write)

    config = tiny_config(args.workdir, jit_compile=args.jit_compile, resume=args.resume,
                         overwrite=args.overwrite)
    common.run_cli(lambda: train_model(config, tiny_splits()))


if __name__ == "__main__":
    main()
