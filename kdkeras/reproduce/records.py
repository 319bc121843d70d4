"""What a table file (`table_<N>.json`) keeps: rows over seeds, runs, scale, cost ratios.

Pure functions of finished runs' results and of the table definitions; the
notebooks read these records through `kdkeras.reporting.tables_io`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from kdkeras.reporting import aggregate
from kdkeras.reproduce import tables as paper_tables
from kdkeras.reproduce.settings import Settings
from kdkeras.training.config import preset_label
from kdkeras.training.config import schedule_record as config_schedule_record
from kdkeras.training.provenance import provenance

TEACHER_MODELS = frozenset(p.teacher for p in paper_tables.PAIRS.values())


def row_fields(row: paper_tables.Run) -> dict:
    """The definition of a row, as its table file states it."""
    return {"label": row.label, "kind": row.kind, "model": row.model, "teacher": row.teacher,
            "method": row.method, "options": dict(row.options),
            "num_teachers": row.num_teachers, "chain": list(row.chain), "stage": row.stage,
            "in_paper": row.in_paper}


def paired_difference(runs: list[dict], other_runs: list[dict]) -> Optional[dict]:
    """Top-1 of a row minus its comparison row's, paired by seed, in points
    (`aggregate.paired_difference`)."""
    return aggregate.paired_difference({r["seed"]: r["test_accuracy"] for r in runs},
                                       {r["seed"]: r["test_accuracy"] for r in other_runs}, 100.0)


def run_record(seed: int, results: dict) -> dict:
    """The part of a run's results.json a table file keeps."""
    prov = results.get("provenance", {})
    config = results.get("config", {})
    return {"seed": seed, "workdir": config.get("workdir"),
            "test_accuracy": results["test_accuracy"],
            "best_test_accuracy": results.get("best_test_accuracy"),
            "epochs": results.get("epochs"), "batch_size": config.get("batch_size"),
            "lr_decay_every": config.get("lr_decay_every"),
            "train_subset": config.get("train_subset"),
            "teachers": results.get("teachers"),
            "seconds": round(sum(h.get("seconds", 0.0) for h in results.get("history", [])), 1),
            "git_commit": prov.get("git_commit"), "date": prov.get("date"),
            "data": {k: prov.get(k) for k in ("dataset", "dataset_source", "num_train",
                                               "num_test", "num_classes")},
            "history": aggregate.compact_history(results.get("history", []))}


def seeds_record(runs: list[tuple[int, dict]]) -> dict:
    """A row's top-1 (final and best) as mean ± std over its seeds' runs, and the runs."""
    results = [r for _, r in runs]
    return {"top1": aggregate.top1(results),
            "best_top1": aggregate.top1(results, "best_test_accuracy"),
            "runs": [run_record(seed, r) for seed, r in runs]}


def table_record(table: paper_tables.Table, rows: list[dict], scale: dict) -> dict:
    """The whole table file but its cost columns: rows with their gap to the baseline."""
    by_label = {r["label"]: r for r in rows}
    base = by_label[table.baseline].get("top1")
    for r, row in zip(rows, table.rows):
        r["delta_vs_baseline"] = aggregate.difference(r.get("top1"), base)
        other = table.comparison_row(row)
        r["compared_with"] = other.label if other is not None else None
        r["paired_vs_compared"] = (paired_difference(r.get("runs", []),
                                                     by_label[other.label].get("runs", []))
                                   if other is not None else None)
    pair = paper_tables.PAIRS[table.pair]
    return {
        "table": table.number, "group": table.group,
        "group_title": paper_tables.GROUPS[table.group],
        "title": table.title, "pair": table.pair, "family": table.family,
        "teacher": pair.teacher, "student": pair.student,
        "baseline": table.baseline, "headline": table.headline,
        "headline_gap": by_label[table.headline].get("delta_vs_baseline"),
        "headline_paired": paired_difference(by_label[table.headline].get("runs", []),
                                             by_label[table.baseline].get("runs", [])),
        "notes": table.notes,
        "status": "complete" if all(r["status"] in ("ok", "not_applicable") for r in rows)
                  else "partial",
        "rows": rows,
        "scale": scale,
    }


def scale_record(settings: Settings, table: paper_tables.Table, rows: list[dict]) -> dict:
    """What the numbers of a table came from (read from its runs' provenance)."""
    # The students' scale (teachers may have trained longer: teacher_epochs).
    runs = [(r["model"], run) for r in rows for run in r.get("runs", [])]
    first = next((run for m, run in runs if m not in TEACHER_MODELS),
                 runs[0][1] if runs else None)
    dataset, data_dir = settings.family_dataset(table.family)
    data = first["data"] if first else {"dataset": dataset}
    scale = {"preset": settings.preset, "seeds": list(settings.seeds),
             "scale_tag": settings.scale_tag(table.family), "data_dir": data_dir,
             "overrides": dict(settings.overrides),
             "teachers": ("one checkpoint used as all K teachers (smoke plumbing)"
                          if settings.reuse_one_teacher else "K teachers of seeds 0..K-1"),
             "teacher_epochs": settings.teacher_epochs, "teachers_dir": _portable(settings.teachers_dir),
             **data,
             "epochs": first["epochs"] if first else None,
             "batch_size": first["batch_size"] if first else None}
    schedule = schedule_record(data.get("dataset") or dataset, first)
    scale["preset"] = preset_label(settings.preset, schedule)
    scale["schedule"] = schedule
    return {**scale, "provenance": provenance(**scale)}


def schedule_record(dataset: str, run: Optional[dict]) -> dict:
    """The students' schedule as a finished run recorded it (`kdkeras.training.config.schedule_record`)."""
    if run is None:
        return {"name": None, "description": "no finished run"}
    data = run.get("data") or {}
    return config_schedule_record(
        dataset, epochs=run.get("epochs"), lr_decay_every=run.get("lr_decay_every"),
        batch_size=run.get("batch_size"), train_subset=run.get("train_subset"),
        num_train=data.get("num_train"), num_test=data.get("num_test"))


def _portable(path):
    """`path` relative to the kdkeras checkout when inside it (table files travel with it)."""
    if not path:
        return path
    repo = Path(__file__).resolve().parents[2]
    try:
        return str(Path(path).resolve().relative_to(repo))
    except ValueError:
        return path


def cost_models(table: paper_tables.Table) -> list[str]:
    """The models of a table's cost columns: teacher, (assistant,) student."""
    pair = paper_tables.PAIRS[table.pair]
    assistant = ([pair.assistant] if table.group == "two_stage"
                 and any(r.chain for r in table.rows) else [])
    return [pair.teacher, *assistant, pair.student]


def cost_ratios(names: list[str], per_model: dict) -> dict:
    """Teacher/student ratios of `per_model` costs, as `kdkeras.utils.cost.cost_report` has them.

    The first model against the last, then each consecutive pair of a chain.
    """
    ratios = {}
    pairs = [(names[0], names[-1])] + (list(zip(names, names[1:])) if len(names) > 2 else [])
    for t, s in pairs:
        ct, cs = per_model[t], per_model[s]
        ratios[f"{t}->{s}"] = {
            "compression_ratio": ct["params"] / cs["params"],
            "computation_ratio": ct["macs"] / cs["macs"],
            "params_reduction_pct": 100.0 * (1.0 - cs["params"] / ct["params"]),
            "macs_reduction_pct": 100.0 * (1.0 - cs["macs"] / ct["macs"]),
            "latency_speedup": ct["latency"]["median_ms"] / cs["latency"]["median_ms"]}
    return ratios
