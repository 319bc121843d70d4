"""Renders the table files of a results folder into one Markdown page beside them.

    python scripts/render_tables.py results/cifar10-jpeg/tables-t80 \
        --title="ResNet-32 → ResNet-8 on CIFAR-10 (JPEG), 10,000 images" --intro="Scale: ..."

Reads every `table_N.json` in the folder (as `experiments/reproduce.py` or
`scripts/gpu/collect_tables.py` wrote them) and writes `tables.md`: each table
beside the paper's figures (`kdkeras.reporting.tables_io.render_document`).
"""

from pathlib import Path

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("title", None, "Heading of the page.", required=True)
flags.DEFINE_string("intro", "", "A paragraph under the heading: the scale, in words.")


def main(argv):
    if len(argv) != 2:
        raise app.UsageError("usage: render_tables.py DIR --title=... [--intro=...]")
    from kdkeras.reporting.tables_io import load_table, render_document
    from kdkeras.reproduce import tables

    folder = Path(argv[1])
    records = [r for n in sorted(tables.TABLES) if (r := load_table(n, folder)) is not None]
    if not records:
        raise app.UsageError(f"No table_N.json in {folder}.")
    (folder / "tables.md").write_text(render_document(records, FLAGS.title, FLAGS.intro))
    print(f"{folder / 'tables.md'}: tables {[r['table'] for r in records]}")


if __name__ == "__main__":
    app.run(main)
