"""experiments/reproduce.py: the tables as data, and smoke reproductions end to end.

The end-to-end tests run the real script on synthetic data (and on generated
ImageNet64 npz files) at the smoke preset, then check every number of the
table file against the run directories it came from.
"""

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import REPO, run_script
from kdkeras.reporting import aggregate

sys.path.insert(0, str(REPO / "experiments"))
import tables  # noqa: E402  (experiments/tables.py)


def _load_reproduce():
    spec = importlib.util.spec_from_file_location("reproduce", REPO / "experiments" / "reproduce.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the tables as data ------------------------------------------------------------
def test_twenty_tables_in_seven_groups():
    assert sorted(tables.TABLES) == list(range(1, 21))
    groups = {}
    for t in tables.TABLES.values():
        groups.setdefault(t.group, []).append(t.number)
    assert groups == {"main": [1, 2, 3], "p1": [4, 5, 6], "p2": [7, 8, 9], "p3": [10, 11, 12],
                      "combinations": [13, 14, 15], "comparison": [16, 17, 18],
                      "two_stage": [19, 20]}
    assert [tables.TABLES[n].pair for n in (1, 2, 3, 19, 20)] == [
        "vgg", "resnet", "mobilenet", "resnet50", "resnet50"]
    assert {t.number for t in tables.TABLES.values() if t.cost} == {1, 2, 3, 16, 17, 18, 19, 20}


@pytest.mark.parametrize("number", sorted(tables.TABLES))
def test_every_table_is_well_formed(number):
    from kdkeras import models
    from kdkeras.distill import METHODS

    t = tables.TABLES[number]
    labels = [r.label for r in t.rows]
    assert len(set(labels)) == len(labels)
    t.row(t.baseline), t.row(t.headline)  # both exist
    for r in t.rows:
        models.spec(r.model)
        assert r.method in METHODS
        if r.kind == tables.DISTILL:
            models.spec(r.teacher)
            assert r.num_teachers >= 1 and r.teacher == tables.PAIRS[t.pair].teacher
        if r.kind == tables.STAGES:
            assert r.chain[0] == tables.PAIRS[t.pair].teacher and r.num_teachers >= 1


def test_ablation_rows_have_the_papers_switches():
    vgg_p1 = tables.get(4)
    assert [r.cross_depth for r in vgg_p1.rows] == [None, 1, (1,), (2,), (3,), 3]
    assert [r.cross_depth for r in tables.get(6).rows][-2:] == [(4,), 4]  # MobileNet: cross-four
    assert [r.num_teachers for r in tables.get(10).rows] == [0, 1, 2, 3]
    assert {r.method for r in tables.get(10).rows[1:]} == {"fsp"}
    p2 = tables.get(7)
    assert [r.method for r in p2.rows] == ["student", "hinton", "fsp", "fsp_kl"]
    ours = tables.get(3).row(tables.get(3).headline)
    assert (ours.method, ours.num_teachers, dict(ours.options)) == ("ours", 3, {"cross_depth": 4})
    beta_off = tables.get(13).row("P1+P2+P3, β off")
    assert dict(beta_off.options)["beta_mode"] == "off" and not beta_off.in_paper


def test_paper_figures_point_at_existing_tables_and_rows():
    paper = json.loads((REPO / "results" / "paper_reported.json").read_text())
    figures = paper["figures"]
    assert {f["source"] for f in figures.values()} <= set(paper["sources"])
    for key, f in figures.items():
        for n in f["tables"]:
            t = tables.get(n)
            if f["kind"] in ("top1", "gap"):
                t.row(f["row"])
            if f["kind"] == "gap":
                assert f["over"] == t.baseline, (key, n)
    # The figures the brief quotes, each once.
    values = sorted(f["value"] for f in figures.values() if f["kind"] in ("top1", "gap"))
    assert values == sorted([66.67, 68.45, 49.86, 3.57, 4.38, 3.98, 0.4, 0.13, 3.38, 1.54, 1.54,
                             2.59, 1.66, 1.31, 2.27, 2.98, 4.04, 3.45])
    assert figures["inference_ms.resnet50"]["value"] == {"resnet50": 188.9, "resnet10": 66.3}


@pytest.mark.parametrize("text, expected", [
    ("all", list(range(1, 21))), ("4", [4]), ("7,1, 4", [1, 4, 7]), ("4-6", [4, 5, 6])])
def test_table_selection(text, expected):
    assert tables.parse_selection(text) == expected


def test_unknown_table_is_refused():
    with pytest.raises(ValueError, match="Unknown table 21"):
        tables.parse_selection("21")


def test_mean_and_sample_std_over_seeds():
    stats = aggregate.mean_std([61.0, 63.0, 65.5])
    assert stats["mean"] == pytest.approx(np.mean([61.0, 63.0, 65.5]))
    assert stats["std"] == pytest.approx(np.std([61.0, 63.0, 65.5], ddof=1))
    assert aggregate.mean_std([70.0])["std"] is None
    assert aggregate.format_mean_std(stats) == "63.17 ± 2.25 (n=3)"


@pytest.fixture(scope="module")
def reproduce():
    return _load_reproduce()  # once: it defines absl flags


def test_parallel_jobs_get_whole_pairs(reproduce):
    groups = reproduce.split_by_pair(list(range(1, 21)), jobs=2)
    assert len(groups) == 2 and sorted(sum(groups, [])) == list(range(1, 21))
    for pair in tables.PAIRS:
        holders = [i for i, g in enumerate(groups) if any(tables.get(n).pair == pair for n in g)]
        assert len(holders) == 1, pair  # the runs of a pair stay in one process
    assert reproduce.split_by_pair([4, 7], jobs=4) == [[4, 7]]


def test_teachers_dir_accepts_collected_train_runs(reproduce, tmp_path):
    (tmp_path / "resnet32-s1").mkdir()
    (tmp_path / "resnet32-s1" / "model.keras").write_bytes(b"")
    rep = reproduce.Reproducer(reproduce.Settings(teachers_dir=str(tmp_path)))
    assert rep.model_dir("resnet32", 1, "cifar") == tmp_path / "resnet32-s1"
    assert rep.model_dir("resnet32", 0, "cifar") == tmp_path / "resnet32" / "seed-0"
    # Students trained alone never live among the teachers.
    assert rep.model_dir("resnet8", 0, "cifar").parts[-3:] == ("models", "resnet8", "seed-0")


def test_run_directories_are_named_by_what_they_are(reproduce):
    assert reproduce.options_slug("p1", (("cross_depth", (2,)),), 1) == "p1-cross_depth_only2-k1"
    assert reproduce.options_slug("p1_p2", (("beta_mode", "off"), ("cross_depth", 3)), 3) == \
        "p1_p2-beta_mode_off-cross_depth3-k3"
    s = reproduce.Settings(preset="fast", dataset="cifar10_jpeg",
                           overrides=(("epochs", 4), ("train_subset", 5000)))
    assert s.scale_tag("cifar") == "cifar10_jpeg-fast-e4-n5000"
    assert s.family_dataset("imagenet64") == ("imagenet64", None)


# --- end to end on synthetic data ----------------------------------------------------
@pytest.fixture(scope="module")
def p2_smoke(tmp_path_factory):
    root = tmp_path_factory.mktemp("reproduce")
    args = ["--table=7", "--preset=smoke", "--seeds=2", f"--runs_dir={root / 'runs'}",
            f"--results_dir={root / 'results'}"]
    proc = run_script("reproduce.py", *args)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return root, args, json.loads((root / "results" / "table_7.json").read_text())


def test_table_file_aggregates_the_runs_it_names(p2_smoke):
    _, _, record = p2_smoke
    assert record["table"] == 7 and record["status"] == "complete"
    assert [r["label"] for r in record["rows"]] == [r.label for r in tables.get(7).rows]
    for row in record["rows"]:
        assert row["status"] == "ok" and [run["seed"] for run in row["runs"]] == [0, 1]
        # Recompute from the run directories themselves, not from the table file.
        accs = [100 * json.loads((Path(run["workdir"]) / "results.json").read_text())
                ["test_accuracy"] for run in row["runs"]]
        assert row["top1"]["values"] == pytest.approx(accs)
        assert row["top1"]["mean"] == pytest.approx(sum(accs) / 2)
        assert row["top1"]["std"] == pytest.approx(abs(accs[0] - accs[1]) / math.sqrt(2))
        assert row["runs"][0]["history"][0]["epoch"] == 1
    by_label = {r["label"]: r for r in record["rows"]}
    fsp = by_label["FSP"]["top1"]["mean"]
    assert by_label["FSP + KL (P2)"]["delta_vs_baseline"] == pytest.approx(
        by_label["FSP + KL (P2)"]["top1"]["mean"] - fsp)
    assert record["headline_gap"] == by_label["FSP + KL (P2)"]["delta_vs_baseline"]


def test_table_file_states_its_scale_and_provenance(p2_smoke):
    _, _, record = p2_smoke
    scale = record["scale"]
    assert scale["preset"] == "smoke" and scale["seeds"] == [0, 1] and scale["epochs"] == 1
    assert (scale["dataset"], scale["num_train"], scale["num_test"], scale["num_classes"]) == (
        "synthetic", 64, 32, 5)
    prov = scale["provenance"]
    assert len(prov["git_commit"]) >= 7 and prov["date"].startswith("20")
    assert "device" in prov["machine"] and "reproduce.py" in prov["command"]


def test_teachers_are_trained_once_and_shared(p2_smoke):
    root, _, record = p2_smoke
    models_dir = next((root / "runs").iterdir()) / "models"
    # Smoke: one vgg11 teacher (seed 0), reused by every KD row and seed.
    assert sorted(p.name for p in (models_dir / "vgg11").iterdir()) == ["seed-0"]
    teacher = str(models_dir / "vgg11" / "seed-0" / "model.keras")
    kd_rows = [r for r in record["rows"] if r["kind"] == "distill"]
    assert {t for r in kd_rows for run in r["runs"] for t in run["teachers"]} == {teacher}


def test_rerun_skips_finished_runs_and_resumes_unfinished_ones(p2_smoke):
    root, args, record = p2_smoke
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
    again = json.loads((root / "results" / "table_7.json").read_text())
    assert [r["top1"]["mean"] for r in again["rows"]] == pytest.approx(
        [r["top1"]["mean"] for r in record["rows"]])


# --- the ImageNet 64x64 path on generated npz files -----------------------------------
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
