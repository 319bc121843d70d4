"""The result collectors in scripts/: what they compute from finished run directories."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(script, *args):
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / script), *map(str, args)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def _results(path: Path, *, method, seed, acc, options=(), teachers=("t.keras",), epochs=12,
             best=None, decay=5):
    path.mkdir(parents=True)
    prov = {"seed": seed, "git_commit": "abc", "date": "2026-11-26", "machine": {"device": "cpu"},
            "num_train": 10000, "num_test": 10000}
    (path / "results.json").write_text(json.dumps({
        "model": "resnet8", "method": method, "test_accuracy": acc,
        "best_test_accuracy": best or acc, "epochs": epochs, "teachers": list(teachers),
        "config": {"distill_options": [list(o) for o in options], "lr_decay_every": decay},
        "provenance": prov}))


def test_teacher_precision_pairs_each_run_with_float32_on_its_seed(tmp_path):
    runs = tmp_path / "runs"
    _results(runs / "f0", method="hinton", seed=0, acc=0.5334)
    _results(runs / "f1", method="hinton", seed=1, acc=0.5127)
    _results(runs / "i0", method="hinton", seed=0, acc=0.5370,
             options=[("teacher_precision", "int8_ahead")])
    _results(runs / "i1", method="hinton", seed=1, acc=0.5107,
             options=[("teacher_precision", "int8_ahead")])
    _run("collect_teacher_precision.py", runs, tmp_path / "out")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    rows = {r["teacher_precision"]: r for r in summary["precisions"]}
    assert rows["int8_ahead"]["paired_delta_vs_float32"] == [0.36, -0.2]
    assert rows["int8_ahead"]["mean_paired_delta_vs_float32"] == pytest.approx(0.08)
    assert rows["float32"]["top1_mean"] == pytest.approx(52.31, abs=0.006)
    assert rows["float32"]["top1_std"] == pytest.approx(1.46, abs=0.006)
    assert "| int8_ahead | [0, 1] |" in (tmp_path / "out" / "summary.md").read_text()


def test_gpu_collector_averages_methods_over_seeds_and_names_the_carry_commit(tmp_path):
    runs = tmp_path / "runs"
    _results(runs / "teacher-seed-0" / "teachers" / "teacher-0", method="alone", seed=0,
             acc=0.7964, teachers=(), epochs=40, decay=10)
    for seed, (alone, ours) in enumerate([(0.6247, 0.6857), (0.6329, 0.6919)]):
        _results(runs / "method-student" / f"student-s{seed}", method="student", seed=seed,
                 acc=alone, teachers=(), epochs=20)
        _results(runs / "method-ours" / f"ours-s{seed}", method="ours", seed=seed, acc=ours,
                 teachers=("a", "b", "c"), epochs=20)
    call = tmp_path / "call"
    call.mkdir()
    (call / "provenance.json").write_text(json.dumps(
        {"devices": ["gpu:H100"], "nvidia_smi": "H100", "carry_manifest": {"git_commit": "c72e854"}}))
    _run("gpu/collect_results.py", runs, tmp_path / "out", f"--call={call}")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    methods = {m["method"]: m for m in summary["methods"]}
    assert methods["student"]["top1_mean"] == pytest.approx(62.88)
    assert methods["ours"]["top1_mean"] == pytest.approx(68.88)
    assert methods["ours"]["gain_vs_student"] == pytest.approx(6.0)
    assert (methods["ours"]["num_teachers"], methods["ours"]["seeds"]) == (3, [0, 1])
    assert summary["teachers"] == [{"seed": 0, "top1": 79.64, "epochs": 40, "lr_decay_every": 10}]
    assert summary["provenance"]["device_calls"][0]["git_commit"] == "c72e854"
    assert (tmp_path / "out" / "runs" / "ours-s1" / "results.json").exists()
