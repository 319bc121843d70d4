"""The student accuracy that each teacher precision gives, from finished distillation runs.

    python scripts/collect_teacher_precision.py RUNS OUT

RUNS holds run directories of `experiments/distill.py` that differ only in
`--teacher_precision` and `--seed` (e.g. `runs/precision-t80/hinton-K1-<precision>-s<seed>`,
as `issue 6` asks: the accuracy effect of bf16 / int8 teachers, against seed
noise). OUT receives `summary.json` (each run's top-1 with its provenance, then
per precision: mean, and the paired difference to float32 on the same seed)
and `summary.md`.
"""

import json
import statistics
from pathlib import Path

from absl import app


def _precision(config: dict) -> str:
    options = dict(config.get("distill_options") or [])
    return options.get("teacher_precision", "float32")


def main(argv):
    if len(argv) != 3:
        raise app.UsageError("usage: collect_teacher_precision.py RUNS OUT")
    runs, out = Path(argv[1]), Path(argv[2])
    rows = []
    for path in sorted(runs.glob("*/results.json")):
        r = json.loads(path.read_text())
        prov = r["provenance"]
        rows.append({"run": path.parent.name, "method": r["method"],
                     "teacher_precision": _precision(r["config"]), "seed": prov["seed"],
                     "num_teachers": len(r["teachers"]), "teachers": r["teachers"],
                     "top1": round(100 * r["test_accuracy"], 2), "epochs": r["epochs"],
                     "num_train": prov.get("num_train"), "num_test": prov.get("num_test"),
                     "git_commit": prov["git_commit"], "date": prov["date"],
                     "machine": prov["machine"]})
    if not rows:
        raise SystemExit(f"No finished run (results.json) under {runs}.")
    fp32 = {r["seed"]: r["top1"] for r in rows if r["teacher_precision"] == "float32"}
    by_precision = {}
    for r in rows:
        by_precision.setdefault(r["teacher_precision"], []).append(r)
    summary_rows = []
    for precision, rs in sorted(by_precision.items()):
        tops = [r["top1"] for r in rs]
        paired = [r["top1"] - fp32[r["seed"]] for r in rs if r["seed"] in fp32]
        summary_rows.append({
            "teacher_precision": precision, "seeds": sorted(r["seed"] for r in rs),
            "top1_mean": round(statistics.fmean(tops), 2),
            "top1_std": round(statistics.stdev(tops), 2) if len(tops) > 1 else None,
            "paired_delta_vs_float32": [round(d, 2) for d in paired],
            "mean_paired_delta_vs_float32": round(statistics.fmean(paired), 2) if paired else None})
    out.mkdir(parents=True, exist_ok=True)
    summary = {"runs_dir": str(runs), "precisions": summary_rows, "runs": rows}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    first = rows[0]
    lines = ["# Student top-1 by teacher precision", "",
             f"{first['method']} KD, K={first['num_teachers']}, {first['num_train']} training / "
             f"{first['num_test']} test images, {first['epochs']} epochs; teachers "
             f"{', '.join(first['teachers'])}. Paired Δ: the same seed with float32 teachers.", "",
             "| teacher precision | seeds | top-1 % (mean) | std | paired Δ vs float32 |",
             "|---|---|---|---|---|"]
    for s in summary_rows:
        std = "" if s["top1_std"] is None else f"{s['top1_std']:.2f}"
        lines.append(f"| {s['teacher_precision']} | {s['seeds']} | {s['top1_mean']:.2f} | {std} | "
                     f"{', '.join(f'{d:+.2f}' for d in s['paired_delta_vs_float32'])} |")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    app.run(main)
