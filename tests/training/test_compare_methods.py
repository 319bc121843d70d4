"""kdkeras.training.runs.compare_methods: which teachers, options and directory each student run gets.

The training itself is `runs.run` (tested with the trainers); here it is
replaced by a recorder, so these tests check the bookkeeping only.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kdkeras.training import runs
from kdkeras.training.config import DistillRunConfig, resolve_config
from kdkeras.training.runs import StudentRun, compare_methods

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def recorded(monkeypatch):
    calls = []

    def fake_distill(cfg, data):
        calls.append(cfg)
        return {"test_accuracy": 0.5, "best_test_accuracy": 0.6}

    monkeypatch.setattr(runs, "run", fake_distill)
    monkeypatch.setattr(runs, "provenance", lambda **kw: {"stub": True})
    monkeypatch.setattr(runs, "data_scale", lambda data, base: {})
    return calls


def test_rows_get_their_own_options_first_k_teachers_and_directories(tmp_path, recorded):
    base = resolve_config(DistillRunConfig, "smoke", dataset="cifar10_jpeg")
    runs = [StudentRun("student", "student"),
            StudentRun("fsp-k2", "fsp", num_teachers=2),
            StudentRun("p1-cross_depth_only2-k1", "p1", (("cross_depth", (2,)),), 1),
            "ours"]
    summary = compare_methods(base, None, methods=runs, seeds=[3], num_teachers=3,
                              root=tmp_path, teacher_paths=["a.keras", "b.keras", "c.keras"])
    got = [(Path(c.workdir).name, c.method, c.distill_options, c.teachers, c.seed)
           for c in recorded]
    assert got == [
        ("student-s3", "student", (), (), 3),
        ("fsp-k2-s3", "fsp", (), ("a.keras", "b.keras"), 3),
        ("p1-cross_depth_only2-k1-s3", "p1", (("cross_depth", (2,)),), ("a.keras",), 3),
        ("ours-s3", "ours", (), ("a.keras", "b.keras", "c.keras"), 3)]
    assert [s["num_teachers"] for s in summary["students"]] == [0, 2, 1, 3]
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["students"][2]["options"] == [["cross_depth", [2]]]


def test_a_row_needing_more_teachers_than_given_is_refused_before_training(tmp_path, recorded):
    base = resolve_config(DistillRunConfig, "smoke", dataset="cifar10_jpeg")
    with pytest.raises(ValueError, match=r"fsp-k3.*more teachers than the 2 given"):
        compare_methods(base, None, methods=[StudentRun("fsp-k3", "fsp", num_teachers=3)],
                        seeds=[0], num_teachers=3, root=tmp_path,
                        teacher_paths=["a.keras", "b.keras"])
    assert recorded == []


GPU_RUNNER_ROWS = """
import sys
sys.modules["tensorflow"] = None  # the GPU machine has no TensorFlow
sys.path.insert(0, "scripts/gpu")
import run_experiment
for run in run_experiment.table_runs(["5", "11"], "resnet8", slugs=None):
    print(run.name, run.method, run.options, run.num_teachers)
"""


def test_gpu_runner_expands_table_rows_without_tensorflow():
    proc = subprocess.run([sys.executable, "-c", GPU_RUNNER_ROWS], cwd=REPO, capture_output=True,
                          text=True, timeout=300,
                          env=dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines() == [
        "student student () None",
        "fsp-init0.125-k1 fsp () 1",
        "fsp_joint-k1 fsp_joint () 1",
        "fsp-init0.125-cross_depth_only2-k1 fsp (('cross_depth', (2,)),) 1",
        "fsp-init0.125-cross_depth_only3-k1 fsp (('cross_depth', (3,)),) 1",
        "fsp-init0.125-cross_depth3-k1 fsp (('cross_depth', 3),) 1",
        "fsp-init0.125-k2 fsp () 2",
        "fsp-init0.125-k3 fsp () 3",
        "fsp-init0.125-adapter_side_student-always_adaptTrue-k1 fsp "
        "(('adapter_side', 'student'), ('always_adapt', True)) 1",
        "fsp-init0.125-adapter_side_student-always_adaptTrue-k3 fsp "
        "(('adapter_side', 'student'), ('always_adapt', True)) 3"]
