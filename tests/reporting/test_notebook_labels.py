"""What the notebooks show is labelled with what it is: a shortened `paper` schedule is
not called the paper's, each table names the file it was read from, the plots name their
data and scale, the β legend names its tables, and no legend covers a bar or a paper
marker (Table 11's +1.31 sits at the top right of its axes).

Read from committed real tables: the lent GPU's Table 2 (a shortened `paper`
schedule, rows with β) and the controlled CPU re-run of Table 11."""

import json

import matplotlib
import pytest

matplotlib.use("Agg")

from kdkeras.reporting import plots, tables_io  # noqa: E402

REAL = tables_io._REPO_RESULTS / "cifar10-jpeg"


@pytest.fixture
def table_2():
    return json.loads((REAL / "gpu-tables" / "table_2.json").read_text())


@pytest.fixture
def table_11():
    return json.loads((REAL / "controlled" / "table_11.json").read_text())


def test_a_shortened_paper_schedule_is_not_called_the_paper(table_2):
    assert (table_2["scale"]["preset"], table_2["scale"]["epochs"]) == ("paper-shortened", 20)
    assert table_2["scale"]["schedule"]["name"] == "shortened"
    line = tables_io.scale_line(table_2)
    assert line.startswith("Scale: the paper's recipe shortened to 20 epochs (preset `paper` "
                           "with --epochs=20; the paper trains 200),")
    older = {**table_2, "scale": {**table_2["scale"], "preset": "paper"}}  # before the label
    assert tables_io.scale_line(older) == line
    full = {**table_2, "scale": {**table_2["scale"], "preset": "paper", "epochs": 200}}
    assert tables_io.scale_line(full).startswith("Scale: preset `paper`,")


def test_a_shown_table_names_the_file_it_was_read_from(table_11):
    text = tables_io.render_table(table_11, 11, source=REAL / "controlled" / "table_11.json")
    assert "Read from `results/cifar10-jpeg/controlled/table_11.json`." in text
    assert "Read from" not in tables_io.render_table(table_11, 11)  # a tables.md page
    # The notebooks read the controlled re-run, not the confounded files it replaced.
    assert tables_io.table_path(11).as_posix().endswith("results/cifar10-jpeg/controlled/table_11.json")


def test_plots_name_their_data_scale_and_tables_and_keep_legends_off_the_bars(table_2, table_11):
    gaps = {(11, "FSP, 3 teachers (P3)"): 1.31}
    fig = plots.ablation_bars([table_11], gaps)
    ax = fig.axes[0]
    assert "image_folder, 10000 images, 10 epochs, 3 seeds" in ax.get_title()
    fig.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= ax.get_window_extent().x1  # beside the axes, over nothing
    beta = plots.beta_curves([table_2])  # its `ours` row runs with β
    labels = beta.axes[0].get_legend_handles_labels()[1]
    assert labels == ["Table 2: Ours (P1+P2+P3, β)"]
    assert "Table 2: cifar10_jpeg, 50000 images, 20 epochs" in beta.axes[0].get_title()
