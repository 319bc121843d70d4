"""What the notebooks show is labelled with what it is: a shortened `paper` schedule is
not called the paper's, each table names the file it was read from, the plots name their
data and scale, the β legend names its tables, and no legend covers a bar or a paper
marker (Table 11's +1.31 sits at the top right of its axes)."""

import json

import matplotlib
import pytest

matplotlib.use("Agg")

from kdkeras.reporting import plots, tables_io  # noqa: E402

GPU_TABLES = tables_io._REPO_RESULTS / "cifar10-jpeg" / "gpu-tables"


@pytest.fixture
def table_11():
    return json.loads((GPU_TABLES / "table_11.json").read_text())


def test_a_shortened_paper_schedule_is_not_called_the_paper(table_11):
    assert (table_11["scale"]["preset"], table_11["scale"]["epochs"]) == ("paper-shortened", 20)
    assert table_11["scale"]["schedule"]["name"] == "shortened"
    line = tables_io.scale_line(table_11)
    assert line.startswith("Scale: the paper's recipe shortened to 20 epochs (preset `paper` "
                           "with --epochs=20; the paper trains 200),")
    older = {**table_11, "scale": {**table_11["scale"], "preset": "paper"}}  # before the label
    assert tables_io.scale_line(older) == line
    full = {**table_11, "scale": {**table_11["scale"], "preset": "paper", "epochs": 200}}
    assert tables_io.scale_line(full).startswith("Scale: preset `paper`,")


def test_a_shown_table_names_the_file_it_was_read_from(table_11):
    text = tables_io.render_table(table_11, 11, source=GPU_TABLES / "table_11.json")
    assert "Read from `results/cifar10-jpeg/gpu-tables/table_11.json`." in text
    assert "Read from" not in tables_io.render_table(table_11, 11)  # a tables.md page


def test_plots_name_their_data_scale_and_tables_and_keep_legends_off_the_bars(table_11):
    gaps = {(11, "FSP, 3 teachers (P3)"): 1.31}
    fig = plots.ablation_bars([table_11], gaps)
    ax = fig.axes[0]
    assert "cifar10_jpeg, 50000 images, 20 epochs, 2 seeds" in ax.get_title()
    fig.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= ax.get_window_extent().x1  # beside the axes, over nothing
    table_14 = json.loads((GPU_TABLES / "table_14.json").read_text())  # rows with β
    beta = plots.beta_curves([table_14])
    labels = beta.axes[0].get_legend_handles_labels()[1]
    assert labels and all(label.startswith("Table 14: ") for label in labels)
    assert "Table 14: cifar10_jpeg, 50000 images, 20 epochs" in beta.axes[0].get_title()
