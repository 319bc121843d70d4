"""Each row of table files against its comparison row: mean ± std and the paired 95% interval.

    python scripts/summarise_controlled_tables.py results/cifar10-jpeg/controlled \
        --tables=5,8,11,14,17 > results/cifar10-jpeg/controlled/controlled.md

Reads `table_<N>.json` (written by `experiments/reproduce.py` or
`scripts/gpu/collect_tables.py`, `kdkeras.reproduce.records`) and prints one
Markdown table per file: each row's top-1 as mean ± std over its seeds, the row
it is compared with (`kdkeras.reproduce.tables`: it differs from that row only
in what its label names), and the difference paired by seed, mean ± std with
its 95% t interval. The scale (data, schedule, seeds, teachers) heads each table.
"""

import argparse
import json
import sys
from pathlib import Path


def _fmt(stats, digits=2):
    if not stats or stats.get("mean") is None:
        return "—"
    text = f"{stats['mean']:+.{digits}f}" if "per_seed" in stats else f"{stats['mean']:.{digits}f}"
    if stats.get("std") is not None:
        text += f" ± {stats['std']:.{digits}f}"
    if stats.get("ci95"):
        lo, hi = stats["ci95"]
        text += f" [{lo:+.{digits}f}, {hi:+.{digits}f}]"
    return f"{text} (n={stats['n']})"


def table_markdown(record: dict) -> str:
    scale = record.get("scale", {})
    schedule = scale.get("schedule", {})
    lines = [f"### Table {record['table']}: {record['title']}", "",
             f"Scale: {scale.get('dataset')}, {schedule.get('description', '?')} "
             f"(schedule: {schedule.get('name')}), seeds {scale.get('seeds')}, "
             f"teachers: {scale.get('teachers')}"
             + (f" from {scale['teachers_dir']}" if scale.get("teachers_dir") else "") + ".", "",
             "| row | top-1 % (mean ± std) | compared with | Δ paired by seed [95% CI] | status |",
             "| --- | --- | --- | --- | --- |"]
    for row in record["rows"]:
        label = row["label"] + ("" if row.get("in_paper", True) else " *")
        lines.append(f"| {label} | {_fmt(row.get('top1'))} | {row.get('compared_with') or '—'} "
                     f"| {_fmt(row.get('paired_vs_compared'))} | {row['status']} |")
    head = record.get("headline_paired")
    lines += ["", f"Headline ({record['headline']} − {record['baseline']}, paired): {_fmt(head)}."
              " Rows marked * are kdkeras additions.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results_dir")
    parser.add_argument("--tables", default="5,8,11,14,17")
    args = parser.parse_args(argv)
    out, missing = [], []
    for n in args.tables.split(","):
        path = Path(args.results_dir) / f"table_{n.strip()}.json"
        if not path.exists():
            missing.append(str(path))
            continue
        out.append(table_markdown(json.loads(path.read_text())))
    print("\n".join(out))
    if missing:
        print(f"error: no table file {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
