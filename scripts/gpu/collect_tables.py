"""Builds reproduce-table files (`table_<N>.json`) from runs a GPU call brought back.

    python scripts/gpu/collect_tables.py OUT --runs=DIR [--runs=DIR ...] \
        --call=DIR [--call=DIR ...] --tables=2,5,8,11,14 [--seeds=0,1]

`--runs` folders hold finished runs anywhere below them (a `results.json` each:
the `runs_archive.py unpack` of a call, a committed results folder, the
teachers'). Each run is keyed by what it is (a model trained alone, or a
student, its K and its resolved `DistillConfig`, however its directory is
named) and its seed; each row of each table takes the runs of its key and
`--seeds`. The records are those of
`kdkeras.reproduce.records` (the engine's), so `kdkeras.reporting.tables_io`
renders them beside the paper's figures; `OUT/tables.md` is that rendering.
A run key found twice for one seed is an error (which one is meant?), unless
the two are copies of one run.
"""

import json
import sys
from pathlib import Path

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("runs", [], "A folder of finished runs (results.json files below it).")
flags.DEFINE_multi_string("call", [], "A device call's returned folder (holds provenance.json), "
                          "or an earlier collect_results.py summary.json (its device calls).")
flags.DEFINE_list("tables", ["2", "5", "8", "11", "14"], "Tables to build.")
flags.DEFINE_list("seeds", ["0", "1"], "Student seeds every row must have.")
flags.DEFINE_string("title", "ResNet-32 → ResNet-8 on CIFAR-10 (JPEG), full data, lent GPU",
                    "Heading of tables.md.")
flags.DEFINE_string("intro", "", "A paragraph under the heading (the scale, in words).")


def _distill_key(model: str, distill_config: dict, k: int) -> str:
    # The resolved DistillConfig, not the options as spelled: `ours` and
    # `ours` with cross_depth=3 are one run.
    return f"{model}:k{k}:" + json.dumps(distill_config, sort_keys=True)


def run_key(results: dict) -> str:
    """What a run is: `alone:<model>`, or its student, K and resolved DistillConfig."""
    teachers = results.get("teachers") or []
    if not teachers:
        return f"alone:{results['model']}"
    return _distill_key(results["model"], results["distill_config"], len(teachers))


def row_key(row) -> str:
    import dataclasses

    from kdkeras.distill import method_config
    from kdkeras.reproduce import tables

    if row.kind == tables.TRAIN:
        return f"alone:{row.model}"
    if row.kind != tables.DISTILL:
        raise app.UsageError(f"Row {row.label!r} is a {row.kind} row; only train and distill "
                             "rows come from GPU runs.")
    config = json.loads(json.dumps(dataclasses.asdict(method_config(row.method,
                                                                    **dict(row.options)))))
    return _distill_key(row.model, config, row.num_teachers)


def _same_run(a: dict, b: dict) -> bool:
    return (a["test_accuracy"] == b["test_accuracy"]
            and a.get("provenance", {}).get("date") == b.get("provenance", {}).get("date"))


def index_runs(folders) -> dict:
    found = {}
    for folder in folders:
        for path in sorted(Path(folder).glob("**/results.json")):
            results = json.loads(path.read_text())
            seed = results.get("provenance", {}).get("seed", results["config"].get("seed"))
            key = (run_key(results), seed)
            if key in found and _same_run(found[key][1], results):
                continue  # a copy of one run (e.g. a teacher in two results folders)
            if key in found:
                raise SystemExit(f"Two runs of {key}: {found[key][0]} and {path.parent}.")
            found[key] = (path.parent, results)
    return found


def device_calls(paths) -> list[dict]:
    """What each device call ran on and which carried commit it ran."""
    calls = []
    for path in map(Path, paths):
        if path.is_file():  # a collect_results.py summary: its calls, already in this form
            calls += json.loads(path.read_text())["provenance"]["device_calls"]
            continue
        c = json.loads((path / "provenance.json").read_text())
        calls.append({"devices": c.get("devices"), "nvidia_smi": c.get("nvidia_smi"),
                      "backend": c.get("backend"), "jax": c.get("jax"), "keras": c.get("keras"),
                      "git_commit": c.get("carry_manifest", {}).get("git_commit")})
    return calls


def scale(runs: list[dict], calls: list[dict], seeds) -> dict:
    from kdkeras.reproduce.records import TEACHER_MODELS, schedule_record
    from kdkeras.training.config import preset_label
    from kdkeras.training.provenance import provenance

    # The students' scale (the teachers trained longer).
    student = next(r for r in runs if r["model"] not in TEACHER_MODELS)
    prov = student.get("provenance", {})
    data = {k: prov.get(k) for k in ("dataset", "dataset_source", "num_train", "num_test",
                                     "num_classes")}
    commits = sorted({c.get("git_commit") for c in calls} - {None})
    devices = sorted({r.get("provenance", {}).get("machine", {}).get("device", "?")
                      for r in runs})
    record = {"preset": student["config"].get("preset"), "seeds": list(seeds),
              "scale_tag": "gpu-runs", "data_dir": None, "overrides": {},
              "teachers": "K teachers of seeds 0..K-1 (results/cifar10-jpeg/teachers-full)",
              "teacher_epochs": None, "teachers_dir": None, **data,
              "epochs": student.get("epochs"), "batch_size": student["config"].get("batch_size"),
              "lr_decay_every": student["config"].get("lr_decay_every"),
              "run_commits": sorted({r.get("provenance", {}).get("git_commit") for r in runs}
                                    - {None}),
              "device_calls": calls}
    # The schedule itself; a shortened one is never labelled "paper" (preset_label).
    record["schedule"] = schedule_record(data.get("dataset") or "cifar10_jpeg", {
        "epochs": record["epochs"], "lr_decay_every": record["lr_decay_every"],
        "batch_size": record["batch_size"], "train_subset": student["config"].get("train_subset"),
        "data": data})
    record["preset"] = preset_label(record["preset"], record["schedule"])
    prov = provenance(**{k: record[k] for k in ("preset", "seeds", "dataset", "num_train",
                                                 "num_test", "epochs", "batch_size")})
    # The runs computed on the GPU: name it and the carried commits, not this machine.
    prov["machine"] = {**prov.get("machine", {}), "device": "GPU (JAX): " + "; ".join(devices),
                       "collected_on": prov.get("machine", {}).get("device")}
    prov["git_commit"] = ", ".join(commits) or prov.get("git_commit")
    prov["collected_by"] = " ".join(["scripts/gpu/collect_tables.py",
                                     *(a for a in sys.argv[1:] if not a.startswith("--intro"))])
    return {**record, "provenance": prov}


def build_table(number: int, found: dict, seeds, calls) -> dict:
    from kdkeras.reproduce import records, tables

    table = tables.get(number)
    rows, used = [], []
    for row in table.rows:
        runs = [(s, found[(row_key(row), s)][1]) for s in seeds if (row_key(row), s) in found]
        used += [r for _, r in runs]
        status = "ok" if len(runs) == len(seeds) else "missing"
        rows.append({**records.row_fields(row), "status": status, **records.seeds_record(runs)})
    return records.table_record(table, rows, scale(used, calls, seeds))


def main(argv):
    if len(argv) != 2:
        raise app.UsageError("usage: collect_tables.py OUT --runs=DIR ... --call=DIR ...")
    from kdkeras.reporting.tables_io import render_document

    out = Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    found = index_runs(FLAGS.runs)
    if not found:
        raise SystemExit(f"No results.json under {FLAGS.runs}.")
    calls = device_calls(FLAGS.call)
    seeds = [int(s) for s in FLAGS.seeds]
    records = []
    for number in (int(n) for n in FLAGS.tables):
        record = build_table(number, found, seeds, calls)
        (out / f"table_{number}.json").write_text(json.dumps(record, indent=2) + "\n")
        records.append(record)
        print(f"table {number}: {record['status']}, headline gap {record['headline_gap']}")
    (out / "tables.md").write_text(render_document(records, FLAGS.title, FLAGS.intro))


if __name__ == "__main__":
    app.run(main)
