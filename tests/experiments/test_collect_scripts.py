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


def _distill_config(method, **options):
    import dataclasses

    from kdkeras.distill import method_config

    return json.loads(json.dumps(dataclasses.asdict(method_config(method, **options))))


def test_gpu_table_collector_builds_table_files_from_runs_keyed_by_what_they_are(tmp_path):
    runs = tmp_path / "runs"
    # Table 11's rows at two seeds; directory names do not matter, the configs do.
    own = {"always_adapt": True, "adapter_side": "student"}
    accs = {(1, False): (0.7000, 0.7029), (2, False): (0.6717, 0.6722),
            (3, False): (0.6495, 0.6593), (1, True): (0.69, 0.70), (3, True): (0.71, 0.72)}
    for seed in (0, 1):
        _results(runs / f"alone-{seed}", method="student", seed=seed,
                 acc=(0.6247, 0.6329)[seed], teachers=(), epochs=20)
        for (k, adapters), acc in accs.items():
            path = runs / f"some-name-{k}-{adapters}-{seed}"
            _results(path, method="fsp", seed=seed, acc=acc[seed], teachers=("t",) * k,
                     epochs=20)
            r = json.loads((path / "results.json").read_text())
            r["distill_config"] = _distill_config("fsp", **(own if adapters else {}))
            (path / "results.json").write_text(json.dumps(r))
    copy = tmp_path / "copy"  # the same run in a second folder is read once
    (copy / "x").mkdir(parents=True)
    (copy / "x" / "results.json").write_text((runs / "some-name-3-False-1" / "results.json").read_text())
    call = tmp_path / "call"
    call.mkdir()
    (call / "provenance.json").write_text(json.dumps(
        {"devices": ["gpu:H200"], "carry_manifest": {"git_commit": "86e4b73"}}))
    _run("gpu/collect_tables.py", tmp_path / "out", f"--runs={runs}", f"--runs={copy}",
         f"--call={call}", "--tables=11", "--seeds=0,1", "--intro=Scale: tiny.")
    table = json.loads((tmp_path / "out" / "table_11.json").read_text())
    rows = {r["label"]: r for r in table["rows"]}
    assert table["status"] == "complete"
    assert rows["FSP"]["top1"]["mean"] == pytest.approx(70.145, abs=1e-3)
    assert rows["FSP, 3 teachers (P3)"]["top1"]["mean"] == pytest.approx(65.44, abs=1e-3)
    assert table["headline_gap"] == pytest.approx(65.44 - 70.145, abs=1e-3)
    assert [run["seed"] for run in rows["FSP, 2 teachers (P3)"]["runs"]] == [0, 1]
    assert rows["FSP, 3 teachers, a student adapter per teacher"]["top1"]["mean"] == \
        pytest.approx(71.5, abs=1e-3)
    assert table["scale"]["device_calls"][0]["git_commit"] == "86e4b73"
    text = (tmp_path / "out" / "tables.md").read_text()
    assert "Scale: tiny." in text and "### Table 11" in text
    # The same page again from the table files alone, under another heading.
    _run("render_tables.py", tmp_path / "out", "--title=Again")
    again = (tmp_path / "out" / "tables.md").read_text()
    assert again.startswith("# Again\n") and again.split("### Table 11")[1] == \
        text.split("### Table 11")[1]
    # A row without its runs is reported missing, not dropped.
    _run("gpu/collect_tables.py", tmp_path / "out2", f"--runs={runs}", f"--call={call}",
         "--tables=5", "--seeds=0,1")
    table5 = json.loads((tmp_path / "out2" / "table_5.json").read_text())
    assert table5["status"] == "partial"
    assert {r["label"]: r["status"] for r in table5["rows"]}["P1 cross-two"] == "missing"


def _teacher_run(path: Path, *, seed, acc, weights=b"abc"):
    path.mkdir(parents=True)
    prov = {"seed": seed, "git_commit": "30c0fd29d9330ff0", "date": "2026-12-03",
            "machine": {"device": "CPU (2 cores)"}, "num_train": 50000, "num_test": 10000,
            "dataset": "cifar10_jpeg", "preset": "paper-shortened"}
    (path / "results.json").write_text(json.dumps({
        "model": "vgg11", "test_accuracy": acc, "epochs": 8, "provenance": prov,
        "schedule": {"description": "8 epochs, lr ×0.1 every 6"},
        "history": [{"seconds": 300.25}, {"seconds": 100.0}]}))
    (path / "history.csv").write_text("epoch,accuracy\n")
    if weights is not None:
        (path / "model.keras").write_bytes(weights)


def test_teacher_collector_copies_records_and_pins_the_weights_by_hash(tmp_path):
    runs = tmp_path / "runs"
    _teacher_run(runs / "vgg11-s0", seed=0, acc=0.7826)
    _teacher_run(runs / "vgg11-s1", seed=1, acc=0.5, weights=None)   # still training
    proc = _run("collect_teachers.py", runs, tmp_path / "out")
    assert "skipped" in proc.stdout and "vgg11-s1" in proc.stdout
    out = tmp_path / "out"
    assert sorted(p.name for p in (out / "vgg11-s0").iterdir()) == ["history.csv",
                                                                     "results.json"]
    assert not (out / "vgg11-s1").exists()
    (entry,) = json.loads((out / "teachers.json").read_text())
    assert entry["folder"] == "vgg11-s0" and entry["seed"] == 0 and entry["seconds"] == 400.2
    # SHA-256 of b"abc" (FIPS 180-2, appendix B.1).
    assert entry["model_keras"] == {
        "bytes": 3, "committed": False, "trained_in": str(runs / "vgg11-s0"),
        "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}
    assert "| `vgg11-s0/` | 0 | 78.26 | 8 epochs, lr ×0.1 every 6 | 50000 / 10000 | 400 |" \
        in proc.stdout
    _run("collect_teachers.py", runs, tmp_path / "with", "--weights")
    assert (tmp_path / "with" / "vgg11-s0" / "model.keras").read_bytes() == b"abc"
    assert json.loads((tmp_path / "with" / "teachers.json").read_text())[0][
        "model_keras"]["committed"] is True


def test_teacher_collector_with_nothing_finished_is_one_clear_error(tmp_path):
    _teacher_run(tmp_path / "runs" / "vgg11-s0", seed=0, acc=0.5, weights=None)
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "collect_teachers.py"),
                           str(tmp_path / "runs"), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("error: no finished teacher run")
    assert not (tmp_path / "out" / "teachers.json").exists()
