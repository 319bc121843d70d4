"""Multi-stage KD (`kdkeras.training.runs.run_stages`): wiring of the stages, and a tiny real chain."""

import dataclasses
import json
from pathlib import Path

import pytest

from kdkeras.data import synthetic
from kdkeras.training import runs as stages
from kdkeras.training.config import DistillRunConfig, resolve_config


def _config(workdir, **values):
    base = dict(model="resnet8", teacher_model="resnet8", train_teachers=1, method="ours",
                train_subset=32, test_subset=16, batch_size=16, verbose=0, resume=True)
    return resolve_config(DistillRunConfig, "smoke", "synthetic", workdir=str(workdir),
                          **{**base, **values})


def test_each_stage_student_is_the_next_stage_teacher(tmp_path):
    chain = ("resnet50", "resnet18", "resnet10", "resnet8")
    first = _config(tmp_path / "chain", train_teachers=3, seed=4)
    configs = stages.stage_configs(chain, first)
    assert [(c.teacher_model, c.model) for c in configs] == [
        ("resnet50", "resnet18"), ("resnet18", "resnet10"), ("resnet10", "resnet8")]
    assert [Path(c.workdir).name for c in configs] == [
        "stage1-resnet50-resnet18", "stage2-resnet18-resnet10", "stage3-resnet10-resnet8"]
    # Stage 1 keeps the K teachers to train; later stages have one teacher: the
    # previous stage's saved student.
    assert configs[0].train_teachers == 3 and configs[0].teachers == ()
    for previous, config in zip(configs, configs[1:]):
        assert config.teachers == (str(Path(previous.workdir) / "student.keras"),)
        assert config.train_teachers == 0 and config.num_teachers == 1
    # The recipe (seed, method, schedule) is the first stage's.
    assert {(c.seed, c.method, c.epochs, c.batch_size) for c in configs} == {(4, "ours", 1, 16)}


def test_stage_overrides_apply_per_stage(tmp_path):
    configs = stages.stage_configs(("resnet32", "resnet8", "resnet8"), _config(tmp_path),
                                   workdir=tmp_path / "other",
                                   stage_overrides=[{}, {"method": "hinton"}])
    assert [c.method for c in configs] == ["ours", "hinton"]
    assert Path(configs[0].workdir).parent == tmp_path / "other"


@pytest.mark.parametrize("chain, overrides, message", [
    (("resnet8",), None, "needs a teacher and a student"),
    (("resnet32", "resnet8"), [{}, {}], "one entry per stage (1)"),
])
def test_bad_chains_are_refused(tmp_path, chain, overrides, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        stages.stage_configs(chain, _config(tmp_path), stage_overrides=overrides)


@pytest.fixture(scope="module")
def chain_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("stages")
    splits = synthetic(num_train=32, num_test=16, num_classes=3, image_shape=(16, 16, 3))
    config = _config(root / "chain")
    results = stages.run_stages(("resnet8", "resnet8", "resnet8"), config, splits=splits,
                                stage_overrides=[{}, {"method": "hinton"}])
    return root, config, splits, results


def test_two_stage_chain_trains_and_hands_the_student_over(chain_run):
    root, _, _, results = chain_run
    assert [r["stage"] for r in results] == [1, 2]
    stage1, stage2 = (Path(r["workdir"]) for r in results)
    for stage_dir in (stage1, stage2):
        for name in ("student.keras", "results.json", "config.json"):
            assert (stage_dir / name).exists(), stage_dir / name
    # Stage 1 trained its own teacher (train_teachers=1); stage 2 learned from stage 1's student.
    assert results[0]["teachers"] == [str(stage1 / "teachers" / "teacher-0" / "model.keras")]
    assert results[1]["teachers"] == [str(stage1 / "student.keras")]
    assert [r["method"] for r in results] == ["ours", "hinton"]
    assert results[1]["model"] == "resnet8" and 0.0 <= results[1]["test_accuracy"] <= 1.0
    # The full method logs β for every epoch of stage 1.
    assert all("beta" in row for row in results[0]["history"])


def test_rerunning_a_finished_chain_reads_it_back(chain_run, monkeypatch):
    _, config, splits, first = chain_run
    import kdkeras.training.runs as runs

    def no_training(*args, **kwargs):
        raise AssertionError("a finished stage was trained again")

    monkeypatch.setattr(runs, "distill_model", no_training)
    again = stages.run_stages(("resnet8", "resnet8", "resnet8"), config, splits=splits,
                              stage_overrides=[{}, {"method": "hinton"}])
    assert [r["test_accuracy"] for r in again] == [r["test_accuracy"] for r in first]


def test_finished_results_needs_the_same_config(chain_run):
    _, config, _, results = chain_run
    stage1 = stages.stage_configs(("resnet8", "resnet8", "resnet8"), config)[0]
    assert stages.finished_results(stage1)["test_accuracy"] == results[0]["test_accuracy"]
    # More epochs to go, or another recipe: not finished (resume or refuse instead).
    assert stages.finished_results(dataclasses.replace(stage1, epochs=2)) is None
    assert stages.finished_results(dataclasses.replace(stage1, method="hinton")) is None
    # A run directory without results.json (killed mid-run) is not finished.
    missing = dataclasses.replace(stage1, workdir=str(Path(stage1.workdir).parent / "none"))
    assert stages.finished_results(missing) is None


def test_an_interrupted_stage_resumes_from_its_checkpoint(chain_run, capsys):
    _, config, splits, first = chain_run
    stage2 = Path(first[1]["workdir"])
    (stage2 / "results.json").unlink()  # killed after its last checkpoint
    again = stages.run_stages(("resnet8", "resnet8", "resnet8"), config, splits=splits,
                              stage_overrides=[{}, {"method": "hinton"}])
    out = capsys.readouterr().out
    assert "Stage 1/2" not in out and "Stage 2/2" in out  # stage 1 was read back
    assert f"Resuming {stage2} after epoch 1/1" in out
    assert again[1]["test_accuracy"] == pytest.approx(first[1]["test_accuracy"])
    assert (stage2 / "results.json").exists()


def test_a_field_added_since_a_run_finished_counts_only_off_its_default(tmp_path):
    """A run written before a config field existed ran with what its default does."""
    config = DistillRunConfig(workdir=str(tmp_path), epochs=1, train_teachers=1)
    stored = json.loads(json.dumps(config.to_dict()))
    del stored["on_nonfinite"]   # as if the field had been added after this run
    (tmp_path / "results.json").write_text(json.dumps(
        {"config": stored, "epochs": 1, "test_accuracy": 0.5}))
    assert stages.finished_results(config)["test_accuracy"] == 0.5
    assert stages.finished_results(dataclasses.replace(config, on_nonfinite="skip")) is None
    # A field the stored run had is compared as before, default or not.
    stored["on_nonfinite"] = "skip"
    (tmp_path / "results.json").write_text(json.dumps({"config": stored, "epochs": 1}))
    assert stages.finished_results(config) is None
