"""kdkeras.reproduce.engine without training: where runs live, and how work is split.

The engine's runs end to end are in `test_smoke_reproduction.py`.
"""

import pytest

from kdkeras.reproduce import Reproducer, Settings, split_by_pair, tables


def test_parallel_jobs_get_whole_pairs():
    groups = split_by_pair(list(range(1, 21)), jobs=2)
    assert len(groups) == 2 and sorted(sum(groups, [])) == list(range(1, 21))
    for pair in tables.PAIRS:
        holders = [i for i, g in enumerate(groups) if any(tables.get(n).pair == pair for n in g)]
        assert len(holders) == 1, pair  # the runs of a pair stay in one process
    assert split_by_pair([4, 7], jobs=4) == [[4, 7]]


def test_teachers_dir_accepts_collected_train_runs(tmp_path):
    (tmp_path / "resnet32-s1").mkdir()
    (tmp_path / "resnet32-s1" / "model.keras").write_bytes(b"")
    rep = Reproducer(Settings(teachers_dir=str(tmp_path)))
    assert rep.model_dir("resnet32", 1, "cifar") == tmp_path / "resnet32-s1"
    assert rep.model_dir("resnet32", 0, "cifar") == tmp_path / "resnet32" / "seed-0"
    # Students trained alone never live among the teachers.
    assert rep.model_dir("resnet8", 0, "cifar").parts[-3:] == ("models", "resnet8", "seed-0")


def test_teachers_dir_with_records_but_no_weights_is_a_clear_error(tmp_path):
    # e.g. results/cifar10-jpeg/teachers-vgg11: the VGG-11s' records, weights kept elsewhere.
    (tmp_path / "vgg11-s2").mkdir()
    (tmp_path / "vgg11-s2" / "results.json").write_text("{}")
    rep = Reproducer(Settings(teachers_dir=str(tmp_path)))
    with pytest.raises(ValueError, match=r"vgg11-s2 holds the records of a vgg11 teacher "
                                         r"\(seed 2\) but not its weights \(model.keras\)"):
        rep.model_dir("vgg11", 2, "cifar")
    assert rep.model_dir("vgg11", 0, "cifar") == tmp_path / "vgg11" / "seed-0"
    # The reproduce run checks up front, before its first table trains anything.
    with pytest.raises(ValueError, match="vgg11-s2 holds the records"):
        rep.check_teachers_dir([4])
    rep.check_teachers_dir([5])   # ResNet-32 teachers: none of them here, trained as usual
    # Table 4 (K=1) at seed 0 uses vgg11-s0 only: seed 2's records are not in its way.
    Reproducer(Settings(teachers_dir=str(tmp_path), seeds=(0,))).check_teachers_dir([4])
    with pytest.raises(ValueError, match="vgg11-s2 holds the records"):
        Reproducer(Settings(teachers_dir=str(tmp_path), seeds=(0,))).check_teachers_dir([1])


def test_smoke_turns_graph_optimisation_off_for_its_runs_only(monkeypatch):
    import gc

    import tensorflow as tf

    from kdkeras.reproduce import engine

    seen = {}

    def fake_reproduce(numbers, settings):
        seen["options"] = tf.config.optimizer.get_experimental_options()
        seen["frozen"] = gc.get_freeze_count()
        return 0

    monkeypatch.setattr(engine, "_reproduce", fake_reproduce)
    before = tf.config.optimizer.get_experimental_options()
    assert engine.reproduce([], Settings.for_preset("smoke", dataset="synthetic")) == 0
    assert seen["options"]["disable_meta_optimizer"] is True and seen["frozen"] > 0
    assert tf.config.optimizer.get_experimental_options() == before
    assert gc.get_freeze_count() == 0
    engine.reproduce([], Settings.for_preset("fast", dataset="cifar100"))
    assert seen["options"] == before  # real runs keep TensorFlow's defaults


def test_a_stop_asked_for_stops_every_table_but_a_failed_row_does_not(monkeypatch):
    import pytest

    from kdkeras.training.guards import TrainingInterrupted

    rep = Reproducer(Settings(seeds=(0,)))
    row = tables.get(2).rows[1]

    def broken(*args):
        raise ValueError("bad checkpoint")

    monkeypatch.setattr(rep, "run_row", broken)
    record = rep.row_record(row, "cifar")
    assert record["status"] == "error" and "bad checkpoint" in record["reason"]

    def interrupted(*args):
        raise TrainingInterrupted("SIGTERM", signum=15, epoch=3, step=7)

    monkeypatch.setattr(rep, "run_row", interrupted)
    with pytest.raises(TrainingInterrupted):
        rep.row_record(row, "cifar")


def test_selected_rows_train_and_the_others_are_only_read_back(monkeypatch, tmp_path):
    from kdkeras.reproduce import engine

    trained = []

    def fake_fit(config, splits, **options):   # e.g. allow_duplicate_teachers
        trained.append(config.workdir)
        return {"test_accuracy": 0.5, "best_test_accuracy": 0.5}

    monkeypatch.setattr(engine, "run", fake_fit)
    # A finished run of an unselected row is read back, as always.
    rep = Reproducer(Settings.for_preset("smoke", dataset="synthetic",
                                         runs_dir=str(tmp_path),
                                         rows=("FSP, 2 teachers (P3)",)))
    finished = {"FSP": {"test_accuracy": 0.7, "best_test_accuracy": 0.7}}
    monkeypatch.setattr(engine, "finished_results", lambda cfg: finished.get(
        "FSP") if cfg.workdir.endswith("fsp-init0.125-k1/seed-0") else None)
    rows = {r.label: rep.row_record(r, "cifar") for r in tables.get(11).rows}
    assert [w.split("/")[-2] for w in trained] == ["resnet32", "fsp-init0.125-k2"]  # teacher, then row
    assert rows["FSP, 2 teachers (P3)"]["status"] == "ok"
    assert rows["FSP"]["status"] == "ok" and rows["FSP"]["top1"]["mean"] == 70.0
    assert rows["FSP, 3 teachers (P3)"]["status"] == "missing"
    assert rows["Student alone (resnet8)"]["status"] == "missing"


def test_an_unknown_row_label_is_refused_with_the_valid_ones():
    import pytest

    from kdkeras.reproduce import engine

    with pytest.raises(ValueError, match=r"not in tables \[11\].*FSP, 2 teachers \(P3\)"):
        engine._reproduce([11], Settings.for_preset("smoke", dataset="synthetic",
                                                   rows=("FSP, 4 teachers",)))


def test_table_files_name_teachers_inside_the_checkout_relative_to_it(tmp_path):
    from pathlib import Path

    from kdkeras.reproduce import records

    repo = Path(records.__file__).resolve().parents[2]
    inside = Settings(teachers_dir=str(repo / "results" / "cifar10-jpeg" / "teachers-full"))
    scale = records.scale_record(inside, tables.get(2), [])
    assert scale["teachers_dir"] == "results/cifar10-jpeg/teachers-full"
    outside = Settings(teachers_dir=str(tmp_path))
    assert records.scale_record(outside, tables.get(2), [])["teachers_dir"] == str(tmp_path)
