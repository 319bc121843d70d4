"""One process at a time in a run directory (issue 21, row 2), with two real processes.

Before the lock, a second `--overwrite` run into a training run's directory
rewrote its `config.json` and emptied its `history.csv`, and a `--resume` into
it failed on a missing file. Now the second process is refused, naming the
holder, and leaves the directory as it was; a lock left by a killed process is
taken over.
"""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from reliability_support import tiny_config

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

# Holds the run directory's lock until its stdin closes (or it is killed).
_HOLDER = """
import sys
from kdkeras.training.run_lock import RunLock
lock = RunLock(sys.argv[1]).acquire()
print("held", flush=True)
sys.stdin.read()
lock.release()
"""


def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1",
                PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))


def _start_holder(workdir):
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(workdir)], cwd=REPO,
                              env=_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def _driver(workdir, *args):
    return subprocess.run([sys.executable, str(HERE / "fault_driver.py"), str(workdir), *args],
                          capture_output=True, text=True, timeout=300, env=_env())


@pytest.mark.parametrize("mode", ["--overwrite", "--resume"])
def test_a_second_process_is_refused_naming_the_holder(tmp_path, mode):
    from kdkeras.training.checkpoints import prepare_run_dir

    workdir = tmp_path / "run"
    prepare_run_dir(workdir, tiny_config(workdir, learning_rate=0.01).to_dict(), resume=False,
                    overwrite=False)
    before = (workdir / "config.json").read_text()
    holder = _start_holder(workdir)
    try:
        proc = _driver(workdir, mode)
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert errors[0].startswith(
        f"error: {workdir} is in use by process {holder.pid} on host {socket.gethostname()}, "
        "started 20")                      # an ISO date follows
    assert "Wait for it to finish or stop it, or choose another --workdir." in errors[0]
    assert (workdir / "config.json").read_text() == before    # untouched
    assert sorted(p.name for p in workdir.iterdir()) == ["config.json"]  # the lock went with it


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path):
    workdir = tmp_path / "run"
    holder = _start_holder(workdir)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=60)
    record = json.loads((workdir / ".run.lock").read_text())
    assert record["pid"] == holder.pid     # the dead holder's record is still there
    proc = _driver(workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (workdir / "model.keras").exists() and not (workdir / ".run.lock").exists()


def test_the_lock_is_reentrant_in_one_process_and_exclusive_across_processes(tmp_path):
    from kdkeras.training.run_lock import RunLock, RunLockedError

    workdir = tmp_path / "run"
    with RunLock(workdir):
        with RunLock(workdir):              # e.g. train_model inside distill_model
            pass
        assert (workdir / ".run.lock").exists()     # still held by the outer one
        other = subprocess.run([sys.executable, "-c", _HOLDER, str(workdir)], cwd=REPO,
                               env=_env(), input="", capture_output=True, text=True, timeout=120)
        assert other.returncode != 0 and "RunLockedError" in other.stderr
        assert f"is in use by process {os.getpid()}" in other.stderr
    assert not (workdir / ".run.lock").exists()
    RunLock(workdir).acquire().release()       # free again
