"""Every notebook in notebooks/ executes headless against smoke results.

The results are generated here by `experiments/reproduce.py --preset=smoke` for
a few tables in a temporary directory (KDKERAS_RESULTS_DIR points the notebooks
at it); the tables not generated check the other promise: a notebook reports a
missing table in words and still runs to the end.
"""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from helpers import REPO, run_script

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
TABLES_OF = {"01_main_results": (1, 2, 3), "02_p1_cross_layer": (4, 5, 6), "03_p2_kl": (7, 8, 9),
             "04_p3_ensemble": (10, 11, 12), "05_combinations": (13, 14, 15),
             "06_comparison": (16, 17, 18), "07_resnet50_two_stage": (19, 20)}
GENERATED = (1,)       # VGG main table: teacher, student alone and the full method (β logged)


def test_one_notebook_per_table_group():
    assert [p.stem for p in NOTEBOOKS] == list(TABLES_OF)
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        assert f"TABLES = {TABLES_OF[path.stem]}" in "".join(c.source for c in nb.cells)
        # Stored without outputs: CI executes them, so they cannot rot.
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), path.name


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory):
    root = tmp_path_factory.mktemp("notebooks")
    proc = run_script("reproduce.py", f"--table={','.join(map(str, GENERATED))}",
                      "--preset=smoke", f"--runs_dir={root / 'runs'}",
                      f"--results_dir={root / 'results'}")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return root / "results"


@pytest.fixture(scope="module")
def executed(smoke_results):
    """Executes a notebook once (cached) with KDKERAS_RESULTS_DIR at the smoke results."""
    cache = {}

    def run(path: Path):
        if path not in cache:
            nb = nbformat.read(path, as_version=4)
            before = os.environ.get("KDKERAS_RESULTS_DIR")
            os.environ["KDKERAS_RESULTS_DIR"] = str(smoke_results)  # the kernel inherits it
            try:
                NotebookClient(nb, timeout=300, kernel_name="python3",
                               resources={"metadata": {"path": str(REPO)}}).execute()
            finally:
                if before is None:
                    os.environ.pop("KDKERAS_RESULTS_DIR")
                else:
                    os.environ["KDKERAS_RESULTS_DIR"] = before
            cache[path] = nb
        return cache[path]

    return run


def _text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            data = out.get("data", {})
            parts.append(data.get("text/markdown", ""))
            parts.append(data.get("text/plain", ""))
    return "\n".join(parts)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes_on_smoke_results(path, smoke_results, executed):
    text = _text(executed(path))
    assert str(smoke_results) in text  # it says where it read from
    for number in TABLES_OF[path.stem]:
        if number in GENERATED:
            assert f"### Table {number}: " in text and "Scale: preset `smoke`" in text
        else:
            assert f"Table {number}: no result yet" in text


def test_main_results_notebook_shows_ours_beside_the_paper(executed):
    nb = executed(REPO / "notebooks" / "01_main_results.ipynb")
    text = _text(nb)
    assert "66.67 (row assumed)" in text               # the paper's VGG-6 figure
    assert "+3.57 (vs Student alone (vgg6))" in text   # and its gain, beside ours
    assert "| vgg11 |" in text and "61.6" in text      # cost columns with the paper's ms
    assert any(o.get("data", {}).get("image/png") for c in nb.cells
               for o in c.get("outputs", []))          # the plots rendered
