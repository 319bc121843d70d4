"""Copies the small files of finished real runs into results/ and writes a comparison.

    .venv/bin/python scripts/collect_real_runs.py runs/real/cifar10-jpeg results/cifar10-jpeg

For each run directory under SRC (one with a results.json), copies results.json
and history.csv, and for teachers their model.keras (a ResNet-32 is ~2 MB), so
later sessions and the tables reuse the same teachers. Writes comparison.json
and comparison.md: every run's top-1 with its scale and provenance.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path


def collect(src: Path, dst: Path) -> list[dict]:
    rows = []
    for results_path in sorted(src.rglob("results.json")):
        run = results_path.parent
        rel = run.relative_to(src)
        out = dst / rel
        out.mkdir(parents=True, exist_ok=True)
        for name in ("results.json", "history.csv", "config.json"):
            if (run / name).exists():
                shutil.copy2(run / name, out / name)
        r = json.loads(results_path.read_text())
        is_teacher = "method" not in r
        if is_teacher and (run / "model.keras").exists():
            shutil.copy2(run / "model.keras", out / "model.keras")
        prov = r["provenance"]
        rows.append({
            "run": str(rel), "model": r["model"], "method": r.get("method", "trained alone"),
            "teachers": len(r.get("teachers", [])), "seed": prov["seed"],
            "test_accuracy": r["test_accuracy"], "best_test_accuracy": r["best_test_accuracy"],
            "epochs": r["epochs"], "num_train": prov["num_train"], "num_test": prov["num_test"],
            "dataset": prov["dataset"], "preset": prov["preset"], "git_commit": prov["git_commit"],
            "date": prov["date"], "machine": prov["machine"]["cpu"],
            "seconds": round(sum(h.get("seconds", 0.0) for h in r["history"]), 1),
        })
    return rows


def to_markdown(rows: list[dict]) -> str:
    lines = ["| run | model | method | K | seed | top-1 (final) | best | epochs | train / test images | seconds |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['run']} | {r['model']} | {r['method']} | {r['teachers']} | {r['seed']} | "
                     f"{100 * r['test_accuracy']:.2f}% | {100 * r['best_test_accuracy']:.2f}% | "
                     f"{r['epochs']} | {r['num_train']} / {r['num_test']} | {r['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv):
    src, dst = Path(argv[1]), Path(argv[2])
    rows = collect(src, dst)
    (dst / "comparison.json").write_text(json.dumps(rows, indent=2) + "\n")
    (dst / "comparison.md").write_text(to_markdown(rows))
    print(to_markdown(rows))


if __name__ == "__main__":
    main(sys.argv)
