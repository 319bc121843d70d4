"""kdkeras.reporting.tables_io: where the notebooks read table files from, and missing tables."""

import json

import pytest

from kdkeras.reporting import tables_io


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(tables_io.RESULTS_ENV, raising=False)
    (tmp_path / "results").mkdir()
    return tmp_path


def test_results_default_to_the_real_tables_once_they_exist(workdir):
    assert tables_io.results_dir() == tables_io.Path("results")
    real = workdir / "results" / "cifar10-jpeg" / "tables"
    real.mkdir(parents=True)
    (real / "README.md").write_text("not a table")
    assert tables_io.results_dir() == tables_io.Path("results")  # no table file yet
    (real / "table_2.json").write_text(json.dumps({"table": 2}))
    assert tables_io.results_dir() == tables_io.Path("results/cifar10-jpeg/tables")
    assert tables_io.load_table(2) == {"table": 2}
    # A stronger scale's tables, once they exist, come first.
    gpu = workdir / "results" / "cifar10-jpeg" / "gpu-tables"
    gpu.mkdir()
    (gpu / "table_5.json").write_text(json.dumps({"table": 5}))
    assert tables_io.results_dir() == tables_io.Path("results/cifar10-jpeg/gpu-tables")
    assert tables_io.load_table(5) == {"table": 5}
    # Each table comes from the strongest scale that holds it.
    assert tables_io.load_table(2) == {"table": 2}
    (gpu / "table_2.json").write_text(json.dumps({"table": 2, "scale": "gpu"}))
    assert tables_io.load_table(2) == {"table": 2, "scale": "gpu"}
    assert tables_io.load_table(3) is None
    assert tables_io.table_path(3) == tables_io.Path("results/cifar10-jpeg/gpu-tables/table_3.json")
    # A controlled re-run (rows differing only in their labels) replaces any scale's file.
    controlled = workdir / "results" / "cifar10-jpeg" / "controlled"
    controlled.mkdir()
    (controlled / "table_5.json").write_text(json.dumps({"table": 5, "scale": "controlled"}))
    assert tables_io.load_table(5) == {"table": 5, "scale": "controlled"}
    assert tables_io.load_table(2) == {"table": 2, "scale": "gpu"}
    assert tables_io.results_dir() == tables_io.Path("results/cifar10-jpeg/controlled")


def test_the_environment_and_an_explicit_path_win(workdir, monkeypatch):
    real = workdir / "results" / "cifar10-jpeg" / "tables"
    real.mkdir(parents=True)
    (real / "table_2.json").write_text("{}")
    monkeypatch.setenv(tables_io.RESULTS_ENV, str(workdir / "smoke"))
    assert tables_io.results_dir() == workdir / "smoke"
    assert tables_io.results_dir(workdir / "other") == workdir / "other"


def test_paper_figures_are_found_beside_the_real_tables(workdir):
    real = workdir / "results" / "cifar10-jpeg" / "tables"
    real.mkdir(parents=True)
    (real / "table_2.json").write_text("{}")
    paper = {"figures": {"x": {"kind": "gap", "value": 1.0, "tables": [2]}}, "sources": {}}
    (workdir / "results" / tables_io.PAPER_FILE).write_text(json.dumps(paper))
    assert tables_io.load_paper() == paper


def test_a_missing_table_is_reported_in_words(workdir):
    assert tables_io.load_table(5) is None
    text = tables_io.render_table(None, 5)
    assert "Table 5: no result yet" in text and "results/table_5.json" in text
    assert "--table=5" in text
