"""`experiments/reproduce.py --table=all --preset=smoke` end to end, then every notebook on it.

One smoke reproduction of Tables 1-20 (synthetic data, one epoch, one teacher
checkpoint as all K) runs once for this module, the way CI and a user run it.
Every table file is checked against the table definitions and against the run
directories it names; then a re-run with a second seed checks skip, resume and
mean ± std over seeds; then every notebook in notebooks/ executes headless
against the table files (KDKERAS_RESULTS_DIR), so neither the engine nor the
notebooks can rot.
"""

import json
import math
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from helpers import REPO, run_script
from kdkeras.reproduce import tables

# The reproduction took about 12 minutes here, on 2 cores shared with other jobs (load 6-8).
SMOKE_TIMEOUT_S = 1500
# 08_ensemble renders the ensemble study, not tables: tests/experiments/test_ensemble_study.py.
NOTEBOOKS = sorted(p for p in (REPO / "notebooks").glob("*.ipynb") if p.stem != "08_ensemble")
TABLES_OF = {"01_main_results": (1, 2, 3), "02_p1_cross_layer": (4, 5, 6), "03_p2_kl": (7, 8, 9),
             "04_p3_ensemble": (10, 11, 12), "05_combinations": (13, 14, 15),
             "06_comparison": (16, 17, 18), "07_resnet50_two_stage": (19, 20)}
# All 20 tables. Tables 19-20 (ResNet-50 -> ResNet-18 -> ResNet-10) used to stop here
# with feature=inf: the 2-step smoke ResNet-50 teacher doubled its activations block
# after block in inference mode until zero-initialised residual branches
# (kdkeras.models.resnet, ImageNet-style ResNets) kept them bounded.
SMOKE_TABLES = tuple(range(1, 21))
COST_TABLES = {n for n in SMOKE_TABLES if tables.get(n).cost}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """(root, table records by number, the finished process) of one smoke reproduction.

    A failed row still leaves its table file (marked partial), so the tests
    below each report what they check rather than all failing on the exit status.
    """
    root = tmp_path_factory.mktemp("reproduce_all")
    proc = run_script("reproduce.py", f"--table=1-{SMOKE_TABLES[-1]}", "--preset=smoke", "--jobs=2",
                      f"--runs_dir={root / 'runs'}", f"--results_dir={root / 'results'}",
                      timeout=SMOKE_TIMEOUT_S)
    records = {n: json.loads(path.read_text()) for n in SMOKE_TABLES
               if (path := root / "results" / f"table_{n}.json").exists()}
    return root, records, proc


def _results(run: dict) -> dict:
    return json.loads((Path(run["workdir"]) / "results.json").read_text())


def test_the_whole_reproduction_succeeds(smoke):
    _, _, proc = smoke
    errors = [line.strip() for line in (proc.stdout + proc.stderr).splitlines()
              if line.strip().startswith(("error", "Traceback"))]
    assert proc.returncode == 0 and not errors, "\n".join(errors) or proc.stderr[-3000:]
    # One process per half of the pairs (--jobs=2), each passed the smoke flags.
    assert "2 processes: tables" in proc.stdout


def test_every_table_file_is_written_and_complete(smoke):
    _, records, _ = smoke
    assert sorted(records) == list(SMOKE_TABLES)
    for n, record in records.items():
        table = tables.get(n)
        assert (record["table"], record["pair"], record["status"]) == (n, table.pair, "complete")
        assert [r["label"] for r in record["rows"]] == [r.label for r in table.rows]
        assert (record["baseline"], record["headline"]) == (table.baseline, table.headline)
        for row in record["rows"]:
            assert row["status"] == "ok", (n, row["label"], row.get("reason"))


def test_each_row_is_the_run_its_directory_holds(smoke):
    _, records, _ = smoke
    for n, record in records.items():
        by_label = {r["label"]: r for r in record["rows"]}
        base = by_label[record["baseline"]]["top1"]["mean"]
        # Rows that failed are test_every_table_file_is_written_and_complete's to report.
        for row in (r for r in record["rows"] if r["status"] == "ok"):
            (run,) = row["runs"]
            results = _results(run)  # the run directory, not the table file
            assert run["seed"] == 0 and row["top1"]["n"] == 1 and row["top1"]["std"] is None
            assert row["top1"]["mean"] == pytest.approx(100 * results["test_accuracy"])
            assert 0.0 <= row["top1"]["mean"] <= 100.0
            assert row["delta_vs_baseline"] == pytest.approx(row["top1"]["mean"] - base)
            assert [h["epoch"] for h in run["history"]] == [1]
            if row["kind"] == "distill":
                assert len(run["teachers"]) == row["num_teachers"]
                assert results["method"] == row["method"]
        assert record["headline_gap"] == by_label[record["headline"]]["delta_vs_baseline"]


def test_the_full_method_logs_beta(smoke):
    _, records, _ = smoke
    for n in (1, 2, 3, 13, 14, 15):
        ours = next(r for r in records[n]["rows"] if r["method"] == "ours")
        assert ours["runs"], (n, ours.get("reason"))
        assert 0.0 <= ours["runs"][0]["history"][0]["beta"] <= 1.0


def test_tables_share_runs_and_one_teacher(smoke):
    root, records, _ = smoke
    # The student alone of a pair is one run, whichever table shows it.
    for pair in ("vgg", "resnet", "mobilenet"):
        dirs = {run["workdir"] for rec in records.values() if rec["pair"] == pair
                for row in rec["rows"] if row["kind"] == "train"
                and row["model"] == tables.PAIRS[pair].student for run in row["runs"]}
        assert len(dirs) == 1, (pair, dirs)
    (scale_dir,) = (root / "runs").iterdir()
    assert scale_dir.name == "synthetic-smoke-one_teacher"
    for teacher in ("vgg11", "resnet32", "mobilenet16"):
        assert sorted(p.name for p in (scale_dir / "models" / teacher).iterdir()) == ["seed-0"]
    teacher = str(scale_dir / "models" / "vgg11" / "seed-0" / "model.keras")
    assert {t for row in records[10]["rows"] for run in row["runs"]
            for t in run["teachers"] or ()} == {teacher}


def test_table_files_state_their_scale_and_provenance(smoke):
    _, records, _ = smoke
    for n, record in records.items():
        scale = record["scale"]
        assert (scale["preset"], scale["seeds"], scale["epochs"]) == ("smoke", [0], 1)
        assert (scale["dataset"], scale["num_train"], scale["num_test"], scale["num_classes"]) == (
            "synthetic", 64, 32, 5), n
        assert scale["teachers"].startswith("one checkpoint used as all K teachers")
        prov = scale["provenance"]
        assert len(prov["git_commit"]) >= 7 and prov["date"].startswith("20")
        assert "device" in prov["machine"] and "reproduce.py" in prov["command"]


def test_cost_tables_carry_params_flops_and_latency(smoke):
    _, records, _ = smoke
    assert {n for n, r in records.items() if "cost" in r} == COST_TABLES
    for n in COST_TABLES:
        cost = records[n]["cost"]
        pair = tables.PAIRS[records[n]["pair"]]
        assert pair.teacher in cost["models"] and pair.student in cost["models"]
        for c in cost["models"].values():
            assert c["params"] > 0 and c["flops"] == 2 * c["macs"] > 0
            assert c["latency"]["median_ms"] > 0 and c["latency"]["repeats"] == 3
        t, s = cost["models"][pair.teacher], cost["models"][pair.student]
        ratio = cost["ratios"][f"{pair.teacher}->{pair.student}"]
        assert ratio["compression_ratio"] == pytest.approx(t["params"] / s["params"])
        assert ratio["computation_ratio"] == pytest.approx(t["macs"] / s["macs"])
        assert ratio["compression_ratio"] > 1.0 and ratio["computation_ratio"] > 1.0
    # The paper's shapes, not the smoke data's.
    assert records[3]["cost"]["models"]["mobilenet9"]["input_shape"] == [64, 64, 3]
    assert records[1]["cost"]["models"]["vgg6"]["num_classes"] == 100


# --- a second seed: skip, resume, mean ± std --------------------------------------------
@pytest.fixture(scope="module")
def two_seeds(smoke):
    """Table 7 again with --seeds=2 over the same runs: only the seed-1 runs train."""
    root, _, _ = smoke
    args = ["--table=7", "--preset=smoke", "--seeds=2", f"--runs_dir={root / 'runs'}",
            f"--results_dir={root / 'results-2seeds'}"]
    proc = run_script("reproduce.py", *args)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return root, args, proc.stdout, json.loads((root / "results-2seeds" / "table_7.json").read_text())


def test_a_second_seed_trains_only_the_missing_runs(two_seeds):
    _, _, stdout, record = two_seeds
    trained = [line.split(":", 1)[0].strip() for line in stdout.splitlines()
               if line.strip().startswith("run ")]
    # The teacher (seed 0, shared) and every seed-0 run are read back.
    assert sorted(trained) == sorted(f"run {r.label}, seed 1" if r.kind != tables.TRAIN
                                     else f"run {r.model} alone, seed 1"
                                     for r in tables.get(7).rows)


def test_mean_and_std_over_seeds_come_from_the_run_directories(two_seeds):
    _, _, _, record = two_seeds
    assert record["scale"]["seeds"] == [0, 1] and record["status"] == "complete"
    for row in record["rows"]:
        assert [run["seed"] for run in row["runs"]] == [0, 1]
        accs = [100 * _results(run)["test_accuracy"] for run in row["runs"]]
        assert row["top1"]["values"] == pytest.approx(accs)
        assert row["top1"]["mean"] == pytest.approx(sum(accs) / 2)
        assert row["top1"]["std"] == pytest.approx(abs(accs[0] - accs[1]) / math.sqrt(2))


def test_rerun_resumes_an_unfinished_run_and_touches_nothing_else(two_seeds):
    root, args, _, record = two_seeds
    hinton = next(r for r in record["rows"] if r["label"] == "Hinton KD")
    killed = Path(hinton["runs"][1]["workdir"])
    (killed / "results.json").unlink()  # as if killed after its last checkpoint
    stamps = {p: p.stat().st_mtime_ns for p in (root / "runs").rglob("results.json")}
    proc = run_script("reproduce.py", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    trained = [line for line in proc.stdout.splitlines() if line.strip().startswith("run ")]
    assert len(trained) == 1 and str(killed) in trained[0], proc.stdout
    assert "Resuming" in proc.stdout and "after epoch 1/1" in proc.stdout
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing else touched
    again = json.loads((root / "results-2seeds" / "table_7.json").read_text())
    assert [r["top1"]["mean"] for r in again["rows"]] == pytest.approx(
        [r["top1"]["mean"] for r in record["rows"]])


# --- the notebooks on the smoke tables ------------------------------------------------
def test_one_notebook_per_table_group():
    assert [p.stem for p in NOTEBOOKS] == list(TABLES_OF)
    assert sorted(n for numbers in TABLES_OF.values() for n in numbers) == list(range(1, 21))
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        assert f"TABLES = {TABLES_OF[path.stem]}" in "".join(c.source for c in nb.cells)
        # Stored executed on the real results, so that they read on a code host (CI
        # executes them again below, on the smoke tables, so they cannot rot).
        stored = _text(nb)
        assert "Results directory: results/cifar10-jpeg/" in stored, path.name
        assert "Scale: preset `smoke`" not in stored and "oneDNN" not in stored, path.name


def _execute(path: Path, results_dir: Path):
    nb = nbformat.read(path, as_version=4)
    before = os.environ.get("KDKERAS_RESULTS_DIR")
    os.environ["KDKERAS_RESULTS_DIR"] = str(results_dir)  # the kernel inherits it
    try:
        NotebookClient(nb, timeout=300, kernel_name="python3",
                       resources={"metadata": {"path": str(REPO)}}).execute()
    finally:
        if before is None:
            os.environ.pop("KDKERAS_RESULTS_DIR")
        else:
            os.environ["KDKERAS_RESULTS_DIR"] = before
    return nb


def _text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            data = out.get("data", {})
            parts.append(data.get("text/markdown", ""))
            parts.append(data.get("text/plain", ""))
    return "\n".join(parts)


def _images(nb) -> int:
    return sum(bool(o.get("data", {}).get("image/png")) for c in nb.cells
               for o in c.get("outputs", []))


@pytest.fixture(scope="module")
def executed(smoke):
    root, _, _ = smoke
    return {path.stem: _execute(path, root / "results") for path in NOTEBOOKS}


@pytest.mark.parametrize("name", [n for n in TABLES_OF if max(TABLES_OF[n]) in SMOKE_TABLES])
def test_notebook_renders_its_smoke_tables(name, smoke, executed):
    root, records, _ = smoke
    text = _text(executed[name])
    assert str(root / "results") in text  # it says where it read from
    for number in TABLES_OF[name]:
        assert f"### Table {number}: {records[number]['title']}" in text
        assert f"**Table {number}.** Scale: preset `smoke`" in text
        assert f"Table {number}: no result yet" not in text
    assert _images(executed[name]) >= 2  # accuracy curves and ablation bars


def test_main_results_notebook_shows_ours_beside_the_paper(executed):
    text = _text(executed["01_main_results"])
    assert "66.67 (row assumed)" in text               # the paper's VGG-6 figure
    assert "+3.57 (vs Student alone (vgg6))" in text   # and its gain, beside ours
    assert "| vgg11 |" in text and "61.6" in text      # cost columns with the paper's ms


def test_a_notebook_reports_missing_tables_and_runs_on(smoke, tmp_path):
    root, _, _ = smoke
    partial = tmp_path / "results"
    partial.mkdir()
    (partial / "table_11.json").write_text((root / "results" / "table_11.json").read_text())
    text = _text(_execute(REPO / "notebooks" / "04_p3_ensemble.ipynb", partial))
    assert "### Table 11: " in text
    assert "Table 10: no result yet" in text and "Table 12: no result yet" in text
