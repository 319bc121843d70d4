"""experiments/reproduce.py on the ImageNet 64x64 format, and without the data it needs.

The whole smoke reproduction of every table, with the notebooks on it, is
`test_reproduce_all_smoke.py`; this runs the MobileNet main table on generated
npz files in the release's layout instead of synthetic data.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from helpers import run_script


def _write_imagenet64(root: Path, n_train: int = 24, n_val: int = 12) -> Path:
    """A tiny copy in the release's layout: train_data_batch_1.npz and val_data.npz."""
    rng = np.random.default_rng(64)
    for folder, name, n in (("Imagenet64_train_npz", "train_data_batch_1.npz", n_train),
                            ("Imagenet64_val_npz", "val_data.npz", n_val)):
        path = root / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, data=rng.integers(0, 256, (n, 3 * 64 * 64), dtype=np.uint8),
                 labels=rng.integers(1, 4, n))  # 1-based ids, as in the release
    return root


def test_mobilenet_table_runs_on_the_imagenet64_format(tmp_path):
    data = _write_imagenet64(tmp_path / "imagenet64")
    proc = run_script("reproduce.py", "--table=3", "--preset=smoke", "--seeds=1",
                      f"--imagenet_data_dir={data}", f"--runs_dir={tmp_path / 'runs'}",
                      f"--results_dir={tmp_path / 'results'}")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    record = json.loads((tmp_path / "results" / "table_3.json").read_text())
    assert record["status"] == "complete" and record["scale"]["dataset"] == "imagenet64"
    assert (record["scale"]["num_train"], record["scale"]["num_classes"]) == (24, 1000)
    assert record["scale"]["batch_size"] == 16  # the ImageNet64 smoke schedule
    cost = record["cost"]["models"]
    assert cost["mobilenet9"]["input_shape"] == [64, 64, 3]
    assert cost["mobilenet9"]["params"] < cost["mobilenet16"]["params"]
    ratio = record["cost"]["ratios"]["mobilenet16->mobilenet9"]
    assert ratio["compression_ratio"] == pytest.approx(
        cost["mobilenet16"]["params"] / cost["mobilenet9"]["params"])
    ours = record["rows"][-1]
    assert ours["options"] == {"cross_depth": 4} and ours["status"] == "ok"
    assert "beta" in ours["runs"][0]["history"][0]


def test_mobilenet_table_without_data_says_what_to_pass(tmp_path):
    proc = run_script("reproduce.py", "--table=3", "--preset=fast", "--seeds=1",
                      f"--runs_dir={tmp_path / 'runs'}", f"--results_dir={tmp_path / 'results'}")
    assert proc.returncode != 0
    assert "--imagenet_data_dir" in proc.stderr and "Traceback" not in proc.stderr


def test_a_sigterm_to_parallel_jobs_stops_every_child(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from helpers import REPO

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    parent = subprocess.Popen(
        [sys.executable, str(REPO / "experiments" / "reproduce.py"), "--table=1,2,4,5",
         "--jobs=2", "--preset=smoke", f"--runs_dir={tmp_path / 'runs'}",
         f"--results_dir={tmp_path / 'results'}"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    children, lines = [], []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # until both children have started a run
        line = parent.stdout.readline()
        lines.append(line)
        if sum("  run " in x for x in lines) >= 2:
            break
    out = subprocess.run(["pgrep", "-P", str(parent.pid)], capture_output=True, text=True)
    children = [int(p) for p in out.stdout.split()]
    assert len(children) == 2, "".join(lines)[-3000:]
    parent.send_signal(signal.SIGTERM)
    try:
        parent.communicate(timeout=120)
        assert parent.returncode != 0
        # Without forwarding the parent dies alone and its children train on, orphaned.
        for pid in children:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    finally:
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _git_status():
    import subprocess

    from helpers import REPO

    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=REPO,
                          capture_output=True, text=True, check=True).stdout


def test_a_smoke_run_writes_to_its_run_folder_and_bad_flags_keep_its_result(tmp_path):
    """Issue 18: the tracked results/ only when asked. Issue 21: a run refused for its
    flags (here --epochs=0) never replaces a complete table file."""
    before = _git_status()
    runs = tmp_path / "runs"
    proc = run_script("reproduce.py", "--table=2", "--preset=smoke", f"--runs_dir={runs}")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    table = runs / "tables" / "table_2.json"
    assert json.loads(table.read_text())["status"] == "complete"
    assert _git_status() == before                  # the checkout is left as it was
    complete = table.read_bytes()
    proc = run_script("reproduce.py", "--table=2", "--preset=smoke", "--epochs=0",
                      f"--runs_dir={runs}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: epochs must be a positive integer. Received: epochs=0.")
    assert "  run " not in proc.stdout              # refused before any run
    assert table.read_bytes() == complete


@pytest.mark.parametrize("table, message", [
    ("2-1", "error: --table='2-1' is an empty range (2-1: 2 > 1); write 1-2."),
    ("abc", "error: --table must be 'all', a number, 'N,M' or 'N-M' with N <= M, tables "
            "1..20. Received: --table='abc'."),
])
def test_a_bad_table_selection_is_refused_naming_the_flag(tmp_path, table, message):
    proc = run_script("reproduce.py", f"--table={table}", "--preset=smoke",
                      f"--runs_dir={tmp_path / 'runs'}")
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error")]
    assert errors == [message] and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()
