"""Exact resume: a run killed (SIGKILL), stopped (SIGINT/SIGTERM) or left with a
corrupted checkpoint continues with --resume to the same final weights, bit for
bit, as an uninterrupted run of the same seed (CPU, no XLA)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import keras
import numpy as np
import pytest

from reliability_support import (EPOCHS, STEPS_PER_EPOCH, assert_bit_identical, partial_files,
                                 saved_weights, tiny_config, tiny_splits)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "experiments"))


@pytest.fixture(scope="module")
def splits():
    return tiny_splits()


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, splits):
    """An uninterrupted run (checkpoints of epochs 1 and 2 kept)."""
    from kdkeras.training.runs import train_model

    workdir = tmp_path_factory.mktemp("reference") / "run"
    train_model(tiny_config(workdir), splits)
    return workdir


@pytest.fixture(scope="module")
def reference(reference_run):
    """The uninterrupted run's final weights."""
    return saved_weights(reference_run)


def _copy_with_resume_config(src, dst):
    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text())
    config["workdir"] = str(dst)   # as if this run had been started in dst
    (dst / "config.json").write_text(json.dumps(config))
    (dst / "model.keras").unlink()


def _resume(workdir, splits):
    from kdkeras.training.runs import train_model

    return train_model(tiny_config(workdir, resume=True), splits)


def _checkpoint_epochs(workdir):
    from kdkeras.training.checkpoints import list_checkpoints

    return [epoch for epoch, _ in list_checkpoints(workdir)]


def _driver(workdir, *args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, str(HERE / "fault_driver.py"), str(workdir), *args],
                          capture_output=True, text=True, timeout=300, env=env)


def test_each_epoch_is_rebuilt_from_seed_and_epoch_alone(splits):
    """The input pipeline started at epoch 2 yields what the full one yields from epoch 2."""
    from kdkeras.data import make_input_pipeline

    def batches(initial_epoch, global_seed):
        keras.utils.set_random_seed(global_seed)  # the pipeline does not depend on it
        ds = make_input_pipeline(splits.train, training=True, batch_size=16, seed=3,
                                 epochs=EPOCHS, initial_epoch=initial_epoch)
        assert ds.steps_per_epoch == STEPS_PER_EPOCH
        assert int(ds.cardinality()) == STEPS_PER_EPOCH * (EPOCHS - initial_epoch)
        return [(x.numpy(), y.numpy()) for x, y in ds]

    full, resumed = batches(0, 0), batches(1, 7)
    assert len(resumed) == len(full) - STEPS_PER_EPOCH
    for (xa, ya), (xb, yb) in zip(full[STEPS_PER_EPOCH:], resumed):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    # Epochs differ from each other (a new shuffle and augmentation each).
    assert not np.array_equal(full[0][1], full[STEPS_PER_EPOCH][1])


def test_sigkill_mid_epoch_then_resume_gives_the_same_weights(tmp_path, splits, reference):
    workdir = tmp_path / "run"
    proc = _driver(workdir, "--kill_at=2:2")
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert "SIGKILL at epoch 2, step 2" in proc.stdout
    assert _checkpoint_epochs(workdir) == [1]       # epoch 2 never completed
    assert not (workdir / "model.keras").exists()
    results = _resume(workdir, splits)
    assert [row["epoch"] for row in results["history"]] == [1, 2]
    assert_bit_identical(saved_weights(workdir), reference)
    assert partial_files(workdir) == []


def test_sigkill_while_a_checkpoint_is_written_leaves_no_partial_file(tmp_path, splits):
    from kdkeras.training.checkpoints import restore_latest

    workdir = tmp_path / "run"
    proc = _driver(workdir, "--kill_in_save=2")
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    # Killed between writing the temporary file and renaming it: the real name
    # never held a partial file, and the previous checkpoint is the latest.
    assert _checkpoint_epochs(workdir) == [1]
    assert partial_files(workdir) == [str(workdir / "checkpoints" / "tmp-epoch-0002.weights.h5")]
    assert restore_latest(_fresh_model(splits), workdir)[0] == 1   # what --resume does first
    assert partial_files(workdir) == []              # the temporary file is gone


def _fresh_model(splits):
    from kdkeras.distill import Distiller, method_config
    from kdkeras.training.runs import build_model

    d = Distiller(build_model("resnet8", splits), [], method_config("student"))
    d.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True))
    return d


class _SignalAt(keras.callbacks.Callback):
    """Sends `signum` to this process after step `step` of epoch `epoch` (1-based)."""

    def __init__(self, signum, epoch, step):
        super().__init__()
        self.signum, self.at = signum, (epoch, step)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch + 1) == self.at:
            os.kill(os.getpid(), self.signum)


@pytest.fixture
def inject(monkeypatch):
    """`inject(callback)` adds `callback` to every later Distiller.fit of the test (None: none)."""
    from kdkeras.distill import Distiller

    extra = []
    fit = Distiller.fit

    def fit_with(self, *a, callbacks=None, **kw):
        return fit(self, *a, callbacks=list(callbacks or []) + extra, **kw)

    monkeypatch.setattr(Distiller, "fit", fit_with)

    def use(callback):
        extra[:] = [callback] if callback is not None else []
    return use


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_stop_after_the_batch_with_a_clear_exit(
        tmp_path, splits, reference, inject, capsys, signum):
    """SIGTERM's run is then resumed and compared; SIGINT's only checked where it stopped."""
    import common
    from kdkeras.training.runs import train_model

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers can only be installed in the main thread")
    workdir = tmp_path / "run"
    inject(_SignalAt(signum, epoch=2, step=3))
    previous = signal.getsignal(signum)
    with pytest.raises(SystemExit) as exit_info:
        common.run_cli(lambda: train_model(tiny_config(workdir), splits))
    assert exit_info.value.code == 128 + signum
    err = capsys.readouterr().err
    name = signal.Signals(signum).name
    assert f"received {name}: stopping after the current batch" in err
    assert (f"stopped: Stopped by {name} in epoch 2, after step 3. The last complete epoch (1) "
            f"is checkpointed in {workdir}/checkpoints; continue with --resume.") in err
    assert "Traceback" not in err
    assert signal.getsignal(signum) == previous      # the handler is put back
    assert _checkpoint_epochs(workdir) == [1] and partial_files(workdir) == []
    history = json.loads((workdir / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1]
    if signum == signal.SIGINT:
        return
    inject(None)                                     # no more signals
    _resume(workdir, splits)
    assert_bit_identical(saved_weights(workdir), reference)
    csv_epochs = [line.split(",")[0] for line in (workdir / "history.csv").read_text().splitlines()]
    assert csv_epochs == ["epoch", "0", "1"]         # the stopped epoch 2 is logged once


def test_corrupted_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, splits,
                                                                   reference_run, reference,
                                                                   capsys):
    workdir = tmp_path / "run"
    _copy_with_resume_config(reference_run, workdir)
    assert _checkpoint_epochs(workdir) == [1, 2]
    newest = workdir / "checkpoints" / "epoch-0002.weights.h5"
    data = bytearray(newest.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(64)           # silent damage: the file still opens
    newest.write_bytes(bytes(data))
    capsys.readouterr()
    _resume(workdir, splits)                        # must notice, and redo epoch 2
    out = capsys.readouterr()
    assert "epoch-0002.weights.h5: its SHA-256 differs" in out.err
    assert "Resuming from epoch-0001.weights.h5" in out.err
    assert "after epoch 1/2" in out.out
    assert_bit_identical(saved_weights(workdir), reference)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_unreadable_checkpoint_is_skipped_and_all_bad_is_a_clear_error(tmp_path, splits,
                                                                       reference_run, damage):
    from kdkeras.training.checkpoints import RunDirError, restore_latest

    workdir = tmp_path / "run"
    _copy_with_resume_config(reference_run, workdir)
    ckpts = sorted((workdir / "checkpoints").glob("epoch-*.weights.h5"))

    def spoil(path):
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3] if damage == "truncate" else os.urandom(len(data)))

    state = json.loads((workdir / "checkpoints" / "state.json").read_text())
    state.pop("sha256")                             # as if written by an older kdkeras:
    (workdir / "checkpoints" / "state.json").write_text(json.dumps(state))  # load must detect it
    spoil(ckpts[-1])
    assert restore_latest(_fresh_model(splits), workdir)[0] == 1
    spoil(ckpts[0])
    with pytest.raises(RunDirError, match="No checkpoint in .* could be loaded.*--overwrite"):
        restore_latest(_fresh_model(splits), workdir)


@pytest.mark.slow
def test_sigkill_then_resume_under_xla_is_bit_identical_on_cpu(tmp_path, splits):
    """With jit_compile=True too (measured on this CPU; XLA makes no such promise on GPUs)."""
    from kdkeras.training.runs import train_model

    train_model(tiny_config(tmp_path / "reference", jit_compile=True), splits)
    workdir = tmp_path / "run"
    proc = _driver(workdir, "--kill_at=2:2", "--jit_compile")
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    train_model(tiny_config(workdir, jit_compile=True, resume=True), splits)
    assert_bit_identical(saved_weights(workdir), saved_weights(tmp_path / "reference"))
