"""The P3 ensemble study end to end on synthetic data, and notebook 08 rendering it.

Two smoke teachers, variants `ours` and `aligned` at K=1 and K=2 over two
seeds (`kdkeras.training.ensemble_study.run_study`, what experiments/ensemble.py
calls); then notebooks/08_ensemble.ipynb executes headless on that summary and
on the committed teacher-similarity measurement.
"""

import dataclasses
import json
import math
import os
import re
import shutil

import keras
import nbformat
import pytest
from nbclient import NotebookClient

from helpers import REPO
from kdkeras.data import load_dataset
from kdkeras.training.config import DistillRunConfig, TrainConfig, resolve_config
from kdkeras.training.ensemble_study import paired_difference, run_dir, run_study
from kdkeras.training.runs import train_model

SIMILARITY = REPO / "results" / "cifar10-jpeg" / "ensemble" / "similarity-independent.json"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("ensemble")
    splits = load_dataset("synthetic", None)
    teachers = []
    for k in range(2):
        config = resolve_config(TrainConfig, "smoke", "synthetic", model="resnet8", seed=k,
                                workdir=str(root / f"teacher-{k}"), verbose=0)
        train_model(config, splits)
        teachers.append(str(root / f"teacher-{k}" / "model.keras"))
    base = resolve_config(DistillRunConfig, "smoke", "synthetic", model="resnet8",
                          teacher_model="resnet8", workdir=str(root / "runs"), verbose=0)
    summary = run_study(base, teachers, variants=["ours", "aligned"], seeds=[0, 1], ks=[1, 2],
                        root=root / "runs", splits=splits)
    return root, summary


def test_summary_pairs_each_k2_run_with_its_k1_twin(study):
    root, summary = study
    assert summary["scale"]["dataset"] == "synthetic" and summary["scale"]["epochs"] == 1
    assert summary["scale"]["run_commits"] == [summary["scale"]["git_commit"]]
    config = json.loads((run_dir(root / "runs", "ours", 1, 0) / "results.json").read_text())
    assert summary["scale"]["lr_decay_every"] == config["config"]["lr_decay_every"] is not None
    for variant in ("ours", "aligned"):
        top1 = {(k, s): 100 * json.loads((run_dir(root / "runs", variant, k, s) / "results.json")
                                         .read_text())["test_accuracy"]
                for k in (1, 2) for s in (0, 1)}
        v = summary["variants"][variant]
        assert v["K1"]["mean"] == pytest.approx((top1[1, 0] + top1[1, 1]) / 2)
        diffs = [top1[2, s] - top1[1, s] for s in (0, 1)]
        assert v["K2_minus_K1"]["mean"] == pytest.approx(sum(diffs) / 2)
        assert v["K2_minus_K1"]["seeds"] == [0, 1]
    between = summary["K2_between_variants"]
    assert list(between) == ["aligned − ours"]
    k2 = {v: summary["variants"][v]["K2"]["by_seed"] for v in ("ours", "aligned")}
    assert between["aligned − ours"]["per_seed"] == pytest.approx(
        [k2["aligned"][s] - k2["ours"][s] for s in (0, 1)])
    config = json.loads((run_dir(root / "runs", "aligned", 2, 1) / "results.json").read_text())
    assert config["distill_config"]["teacher_alignment"] == "procrustes"
    assert len(config["teachers"]) == 2 and config["config"]["seed"] == 1


def test_variants_sharing_ours_k1_run_train_the_same_student_with_one_teacher(study):
    # SAME_AS_OURS_AT_K1 lets the study run their K=1 twin once, as `ours`: each trained
    # with its own options at K=1 gives bit-identical weights and history.
    import numpy as np

    from kdkeras.training.ensemble_study import SAME_AS_OURS_AT_K1, VARIANTS
    from kdkeras.training.runs import run

    root, _ = study
    base = resolve_config(DistillRunConfig, "smoke", "synthetic", model="resnet8",
                          teacher_model="resnet8", verbose=0, method="ours", seed=1,
                          teachers=(str(root / "teacher-0" / "model.keras"),))
    splits = load_dataset("synthetic", None)
    own = {v: run(dataclasses.replace(base, distill_options=VARIANTS[v],
                                      workdir=str(root / "own-k1" / v)), splits)
           for v in SAME_AS_OURS_AT_K1}
    ours_dir = run_dir(root / "runs", "ours", 1, 1)
    ours = json.loads((ours_dir / "results.json").read_text())
    untimed = lambda history: [{k: v for k, v in e.items() if k != "seconds"} for e in history]
    weights = lambda d: keras.saving.load_model(d / "student.keras", compile=False).get_weights()
    for variant, results in own.items():
        assert run_dir(root / "runs", variant, 1, 1) == ours_dir
        assert results["distill_config"] != ours["distill_config"]      # other options...
        assert untimed(results["history"]) == untimed(ours["history"]), variant  # same run
        for a, b in zip(weights(root / "own-k1" / variant), weights(ours_dir)):
            np.testing.assert_array_equal(a, b)


def test_paired_difference_by_hand():
    # Differences 1, 2, 0: mean 1, std 1, 95 % interval 1 ± 4.303/√3.
    d = paired_difference({0: 60.0, 1: 62.0, 2: 61.0, 3: 50.0}, {0: 59.0, 1: 60.0, 2: 61.0})
    assert d["seeds"] == [0, 1, 2] and d["mean"] == pytest.approx(1.0) and d["std"] == pytest.approx(1.0)
    half = 4.303 / math.sqrt(3)
    assert d["ci95"] == pytest.approx([1 - half, 1 + half])
    assert paired_difference({0: 1.0}, {0: 0.0})["ci95"] is None


def test_notebook_renders_the_study_and_lists_what_is_not_run(study, tmp_path):
    _, summary = study
    ensemble_dir = tmp_path / "ensemble"
    ensemble_dir.mkdir()
    (ensemble_dir / "variants-independent-smoke.json").write_text(
        json.dumps({"teacher_set": "independent", **summary}))
    shutil.copy(SIMILARITY, ensemble_dir / SIMILARITY.name)
    nb = nbformat.read(REPO / "notebooks" / "08_ensemble.ipynb", as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    os.environ["KDKERAS_ENSEMBLE_DIR"] = str(ensemble_dir)   # the kernel inherits it
    try:
        NotebookClient(nb, timeout=300, kernel_name="python3",
                       resources={"metadata": {"path": str(REPO)}}).execute()
    finally:
        os.environ.pop("KDKERAS_ENSEMBLE_DIR")
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    text = "\n".join(o.get("text", "") + o.get("data", {}).get("text/markdown", "")
                     for o in outputs)
    assert str(ensemble_dir) in text
    assert "| independent | 1000 test |" in text                     # the similarity table
    assert "Teacher sets not yet measured: snapshot-8e, branched-8e, independent-8e" in text
    assert "| ours | (the paper's P3) |" in text
    assert "| aligned | teacher_alignment=procrustes |" in text
    assert "variants not yet run: adapters, confidence, closest, kl_to_mean" in text
    assert re.search(r"independent ours +spread \d+\.\d\d \(raw\): K=2 − K=1 [+-]\d", text)
    assert sum(bool(o.get("data", {}).get("image/png")) for o in outputs) >= 2
