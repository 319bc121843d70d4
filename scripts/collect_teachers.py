"""Copies finished teacher runs' records into results/ with a manifest of their weights.

    .venv/bin/python scripts/collect_teachers.py SRC DST [--weights]

SRC holds `experiments/train.py` runs as `<model>-s<seed>/` (the layout `--teachers_dir`
reads). For each finished one (results.json and model.keras present) this copies
results.json, config.json and history.csv to DST/<model>-s<seed>/, and model.keras too
with --weights. Without --weights the weights stay where they are (a VGG-11 is 31 MB,
too large to commit), and `--teachers_dir=DST` then stops with a clear error instead of
training other teachers (kdkeras.reproduce.engine). DST/teachers.json lists every
teacher: its top-1, schedule, provenance, and the size and SHA-256 of its model.keras,
so a copy of the weights can be checked against the teacher the tables used.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

RECORDS = ("results.json", "config.json", "history.csv")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def teacher_entry(run: Path, weights_committed: bool) -> dict:
    """What the manifest says of one teacher run."""
    r = json.loads((run / "results.json").read_text())
    prov, schedule = r["provenance"], r.get("schedule", {})
    model_file = run / "model.keras"
    return {
        "folder": run.name, "model": r["model"], "seed": prov["seed"],
        "test_accuracy": r["test_accuracy"], "epochs": r["epochs"],
        "schedule": schedule.get("description"), "preset": prov["preset"],
        "num_train": prov["num_train"], "num_test": prov["num_test"],
        "dataset": prov["dataset"], "git_commit": prov["git_commit"], "date": prov["date"],
        "device": prov["machine"]["device"],
        "seconds": round(sum(h.get("seconds", 0.0) for h in r["history"]), 1),
        "model_keras": {"bytes": model_file.stat().st_size, "sha256": sha256(model_file),
                        "committed": weights_committed, "trained_in": str(run)},
    }


def collect(src: Path, dst: Path, weights: bool) -> list[dict]:
    entries = []
    for run in sorted(p for p in src.glob("*-s*") if p.is_dir()):
        if not ((run / "results.json").exists() and (run / "model.keras").exists()):
            print(f"skipped {run}: not finished (it needs results.json and model.keras)")
            continue
        out = dst / run.name
        out.mkdir(parents=True, exist_ok=True)
        for name in RECORDS + (("model.keras",) if weights else ()):
            if (run / name).exists():
                shutil.copy2(run / name, out / name)
        entries.append(teacher_entry(run, weights))
    return entries


def to_markdown(entries: list[dict]) -> str:
    lines = ["| folder | seed | top-1 % (test) | schedule | train / test images | seconds | "
             "model.keras (MB, SHA-256) | commit |", "|---|---|---|---|---|---|---|---|"]
    for e in entries:
        m = e["model_keras"]
        lines.append(f"| `{e['folder']}/` | {e['seed']} | {100 * e['test_accuracy']:.2f} | "
                     f"{e['schedule']} | {e['num_train']} / {e['num_test']} | "
                     f"{e['seconds']:.0f} | {m['bytes'] / 1e6:.1f}, `{m['sha256'][:16]}…` | "
                     f"{e['git_commit'][:7]} |")
    return "\n".join(lines) + "\n"


def main(argv):
    args = [a for a in argv[1:] if a != "--weights"]
    if len(args) != 2:
        sys.exit(f"usage: {Path(argv[0]).name} SRC DST [--weights]")
    src, dst = Path(args[0]), Path(args[1])
    if not src.is_dir():
        sys.exit(f"error: {src} is not a directory of <model>-s<seed>/ teacher runs")
    entries = collect(src, dst, weights="--weights" in argv)
    if not entries:
        sys.exit(f"error: no finished teacher run (<model>-s<seed>/ with results.json and "
                 f"model.keras) in {src}")
    (dst / "teachers.json").write_text(json.dumps(entries, indent=2) + "\n")
    print(to_markdown(entries))


if __name__ == "__main__":
    main(sys.argv)
