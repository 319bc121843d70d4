"""A checkpoint and the history it belongs to commit as one (issue 21, row 1).

A SIGKILL at each file operation of a checkpoint (each rename and deletion;
killing before a rename is killing after its temporary file was written), then
`--resume`, must give the uninterrupted run's final weights, its optimizer state
and its whole history: `history.json`, `history.csv`, `results.json` and
`state.json`. Before the fix, a kill between the weights' rename and
`state.json`'s lost that epoch's row (`best_test_accuracy` from one epoch
fewer).
"""

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from reliability_support import assert_bit_identical, saved_weights, tiny_config, tiny_splits

HERE = Path(__file__).resolve().parent

# Epoch 2's checkpoint with keep=1, in order (what `fault_driver.py --count_writes` prints).
WRITES = [("replace", "epoch-0002.json"), ("replace", "epoch-0002.weights.h5"),
          ("unlink", "epoch-0001.weights.h5"), ("unlink", "epoch-0001.json"),
          ("replace", "state.json"), ("replace", "history.json")]


@pytest.fixture(scope="module")
def splits():
    return tiny_splits()


@pytest.fixture(scope="module")
def reference(tmp_path_factory, splits):
    from kdkeras.training.runs import train_model

    workdir = tmp_path_factory.mktemp("reference") / "run"
    train_model(tiny_config(workdir), splits)
    return workdir


def _driver(workdir, *args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, str(HERE / "fault_driver.py"), str(workdir), *args],
                          capture_output=True, text=True, timeout=300, env=env)


def _distiller_from(checkpoint, splits):
    from kdkeras.distill import Distiller, method_config
    from kdkeras.training.runs import build_model

    d = Distiller(build_model("resnet8", splits), [], method_config("student"))
    d.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True))
    d.optimizer.build(d.trainable_variables)
    d.load_weights(checkpoint)
    return d


def _without_seconds(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def _csv_rows(path):
    with open(path) as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def test_the_driver_sees_every_write_of_a_checkpoint(tmp_path):
    """The list the kill test walks is the checkpoint's real sequence of writes."""
    proc = _driver(tmp_path / "run", "--count_writes", "--keep=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = [tuple(line.split()[3:5]) for line in proc.stdout.splitlines()
            if line.startswith("driver: write ")]
    assert seen == WRITES


@pytest.mark.parametrize("kill_before", range(len(WRITES) + 1),
                         ids=[f"before {op} {name}" for op, name in WRITES] + ["after the last"])
def test_a_kill_at_any_write_of_a_checkpoint_then_resume_loses_nothing(tmp_path, splits,
                                                                      reference, kill_before):
    from kdkeras.training.runs import train_model

    workdir = tmp_path / "run"
    proc = _driver(workdir, f"--kill_at_write={kill_before}", "--keep=1")
    assert proc.returncode == -signal.SIGKILL, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "driver: SIGKILL" in proc.stdout
    train_model(tiny_config(workdir, resume=True), splits)

    assert_bit_identical(saved_weights(workdir), saved_weights(reference))
    ours = _distiller_from(workdir / "checkpoints" / "epoch-0002.weights.h5", splits)
    theirs = _distiller_from(reference / "checkpoints" / "epoch-0002.weights.h5", splits)
    assert len(ours.optimizer.variables) == len(theirs.optimizer.variables) > 2
    assert_bit_identical([np.asarray(v) for v in ours.optimizer.variables],
                         [np.asarray(v) for v in theirs.optimizer.variables])

    want = json.loads((reference / "results.json").read_text())
    got = json.loads((workdir / "results.json").read_text())
    assert [row["epoch"] for row in got["history"]] == [1, 2]
    assert _without_seconds(got["history"]) == _without_seconds(want["history"])
    assert got["best_test_accuracy"] == want["best_test_accuracy"]
    assert got["test_accuracy"] == want["test_accuracy"]
    history = json.loads((workdir / "history.json").read_text())
    assert _without_seconds(history) == _without_seconds(want["history"])
    state = json.loads((workdir / "checkpoints" / "state.json").read_text())
    assert state["epochs_done"] == 2 and _without_seconds(state["history"]) == _without_seconds(
        want["history"])
    got_csv, want_csv = _csv_rows(workdir / "history.csv"), _csv_rows(reference / "history.csv")
    assert [row["epoch"] for row in got_csv] == [0.0, 1.0]
    for a, b in zip(got_csv, want_csv):
        assert a.keys() == b.keys()
        np.testing.assert_allclose([a[k] for k in a], [b[k] for k in a], rtol=1e-6)


def _copy_run(src, dst):
    import shutil

    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text())
    config["workdir"] = str(dst)
    (dst / "config.json").write_text(json.dumps(config))


def _cli_error(capsys, fn) -> str:
    sys.path.insert(0, str(HERE.parents[1] / "experiments"))
    import common

    with pytest.raises(SystemExit) as exit_info:
        common.run_cli(fn)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_resume_with_every_checkpoint_deleted_is_refused_not_restarted(tmp_path, splits,
                                                                       reference, capsys):
    """Before: `--resume` started again from epoch 1 without a word."""
    from kdkeras.training.runs import train_model

    workdir = tmp_path / "run"
    _copy_run(reference, workdir)
    for path in (workdir / "checkpoints").glob("epoch-*"):
        path.unlink()
    err = _cli_error(capsys, lambda: train_model(tiny_config(workdir, resume=True), splits))
    assert (f"--resume: {workdir} records 2 finished epoch(s) ({workdir}/checkpoints/state.json), "
            f"but {workdir}/checkpoints holds no checkpoint: they were deleted.") in err
    assert "pass --overwrite to do that" in err


def test_resume_with_fewer_epochs_than_done_names_the_flag(tmp_path, splits, reference, capsys):
    """Before: Keras's "Need 0 <= initial_epoch <= epochs", after config.json was rewritten."""
    from kdkeras.training.runs import train_model

    workdir = tmp_path / "run"
    _copy_run(reference, workdir)
    config_before = (workdir / "config.json").read_text()
    err = _cli_error(capsys, lambda: train_model(tiny_config(workdir, resume=True, epochs=1),
                                                 splits))
    assert (f"error: --resume: {workdir} has already trained 2 epochs, more than --epochs=1. "
            "Pass --epochs=2 or more to continue it") in err
    assert (workdir / "config.json").read_text() == config_before
