"""Collects the runs a GPU call brought back into a small, committable results folder.

    python scripts/gpu/collect_results.py RUNS OUT --call=DIR [--call=DIR ...]

RUNS is a folder that `runs_archive.py unpack` filled (teacher runs under
`teacher-seed-k/teachers/teacher-k`, student runs under `method-<m>/<m>-s<seed>`);
each DIR is a device call's returned folder (its `provenance.json` names the GPU
and the carry's git commit, which the runs themselves cannot know: the machine
has no git). OUT receives `summary.json` (per-run accuracies, mean ± std per
method, the scale, the provenance), `summary.md`, and each run's `results.json`
and `history.csv`. Checkpoints stay behind; the teachers' `.keras` files are
copied separately (they are reused by the tables).
"""

import json
import shutil
import statistics
import sys
from pathlib import Path

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("call", [], "A device call's returned folder (holds provenance.json).")
flags.DEFINE_string("title", "ResNet-32 -> ResNet-8 on CIFAR-10 (JPEG), full data, lent GPU",
                    "Heading of summary.md.")


def _run_row(results_path: Path) -> dict:
    r = json.loads(results_path.read_text())
    prov = r.get("provenance", {})
    return {"model": r["model"], "method": r.get("method", "alone"), "seed": prov.get("seed"),
            "test_accuracy": r["test_accuracy"], "best_test_accuracy": r["best_test_accuracy"],
            "epochs": r["epochs"], "num_teachers": len(r.get("teachers", [])),
            "lr_decay_every": r["config"]["lr_decay_every"], "run": str(results_path.parent),
            "device": prov.get("machine", {}).get("device"), "date": prov.get("date"),
            "num_train": prov.get("num_train"), "num_test": prov.get("num_test")}


def _stats(values):
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else 0.0)


def main(argv):
    if len(argv) != 3:
        raise app.UsageError("usage: collect_results.py RUNS OUT --call=DIR ...")
    runs, out = Path(argv[1]), Path(argv[2])
    calls = [json.loads((Path(c) / "provenance.json").read_text()) for c in FLAGS.call]
    rows = [_run_row(p) for p in sorted(runs.glob("*/**/results.json"))]
    if not rows:
        raise SystemExit(f"No results.json under {runs}.")
    out.mkdir(parents=True, exist_ok=True)
    for row in rows:
        name = Path(row["run"]).name
        target = out / "runs" / name
        target.mkdir(parents=True, exist_ok=True)
        for f in ("results.json", "history.csv", "config.json"):
            if (Path(row["run"]) / f).exists():
                shutil.copy2(Path(row["run"]) / f, target / f)
        row["run"] = str(target.relative_to(out))
    teachers = [r for r in rows if r["method"] == "alone" and r["num_teachers"] == 0
                and "teacher" in r["run"]]
    students = [r for r in rows if r not in teachers]
    groups = {}
    for r in students:
        groups.setdefault(r["method"], []).append(r)
    baseline = _stats([100 * r["test_accuracy"] for r in groups.get("student", [])])[0] \
        if "student" in groups else None
    by_method = []
    for method, rs in groups.items():
        mean, std = _stats([100 * r["test_accuracy"] for r in rs])
        by_method.append({"method": method, "n": len(rs), "seeds": sorted(r["seed"] for r in rs),
                          "top1_mean": round(mean, 2), "top1_std": round(std, 2),
                          "gain_vs_student": None if baseline is None else round(mean - baseline, 2),
                          "num_teachers": rs[0]["num_teachers"], "epochs": rs[0]["epochs"],
                          "lr_decay_every": rs[0]["lr_decay_every"]})
    by_method.sort(key=lambda m: m["top1_mean"])
    summary = {
        "title": FLAGS.title,
        "scale": {"num_train": rows[0]["num_train"], "num_test": rows[0]["num_test"],
                  "teacher_epochs": sorted({t["epochs"] for t in teachers}),
                  "student_epochs": sorted({s["epochs"] for s in students})},
        "teachers": [{"seed": t["seed"], "top1": round(100 * t["test_accuracy"], 2),
                      "epochs": t["epochs"], "lr_decay_every": t["lr_decay_every"]}
                     for t in teachers],
        "methods": by_method, "runs": rows,
        "provenance": {"device_calls": [{"devices": c.get("devices"),
                                         "nvidia_smi": c.get("nvidia_smi"),
                                         "backend": c.get("backend"), "jax": c.get("jax"),
                                         "keras": c.get("keras"),
                                         "git_commit": c.get("carry_manifest", {}).get("git_commit")}
                                        for c in calls],
                       "collected_by": " ".join(["scripts/gpu/collect_results.py", *sys.argv[1:]])},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [f"# {FLAGS.title}", "",
             f"Train {summary['scale']['num_train']} / test {summary['scale']['num_test']} images. "
             "Teachers: " + ", ".join(f"seed {t['seed']} {t['top1']:.2f}% ({t['epochs']} epochs, "
                                      f"x0.1 every {t['lr_decay_every']})"
                                      for t in summary["teachers"]) + ".",
             "Devices: " + "; ".join(sorted({str(c['nvidia_smi']) for c in calls})) + ".", "",
             "| method | K | epochs | seeds | top-1 % (mean ± std) | Δ vs student alone |",
             "|---|---|---|---|---|---|"]
    for m in by_method:
        gain = "" if m["gain_vs_student"] is None else f"{m['gain_vs_student']:+.2f}"
        lines.append(f"| {m['method']} | {m['num_teachers']} | {m['epochs']} "
                     f"(x0.1 every {m['lr_decay_every']}) | {m['seeds']} | "
                     f"{m['top1_mean']:.2f} ± {m['top1_std']:.2f} | {gain} |")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    app.run(main)
