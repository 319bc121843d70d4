"""Reading reproduced tables and rendering them beside the paper's reported figures.

    from kdkeras.reporting import tables_io
    record = tables_io.load_table(2)                  # results/table_2.json, or None
    tables_io.show_table(2)                           # Markdown: ours | paper | gap

The results directory is `$KDKERAS_RESULTS_DIR` if set. Otherwise it is found in
`results/` of the current directory (else of the kdkeras checkout): the first
of its `REAL_TABLES` folders that holds table files (the real runs of this
workplace on CIFAR-10 JPEG: the controlled re-runs, then the strongest scale
first), else `results/` itself.
Table N is read from the first `REAL_TABLES` folder that holds `table_N.json`
(its controlled re-run if there is one, else the strongest scale it was run at;
its scale stated in its record), else from the results directory. The paper's figures come from `paper_reported.json` in the results
directory, else from `results/`.
A missing or partial table is reported in words, never as an exception, so the
notebooks run whatever has been reproduced so far.

Writing (`write_table_record`) never replaces a table file with a worse one: a
reproduction that failed (bad flags, a crash in a row) keeps the file that had
more finished rows, and its own record goes elsewhere.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

from kdkeras.reporting.aggregate import format_mean_std

RESULTS_ENV = "KDKERAS_RESULTS_DIR"
PAPER_FILE = "paper_reported.json"
# The real tables of this workplace. First the controlled re-runs (issue 15,
# scripts/rerun_controlled_tables.sh): their rows differ from the row they are
# compared with only in what the label names, so they replace any older file of the
# same table whatever its scale. Then, for tables not yet re-run, the strongest scale
# first: the full data on a lent GPU (scripts/gpu/collect_tables.py), 10,000 images on
# CPU with the full-data teachers, then with the weak ones (reproduce_cifar10_resnet.sh).
REAL_TABLES = (Path("cifar10-jpeg") / "controlled", Path("cifar10-jpeg") / "gpu-tables",
               Path("cifar10-jpeg") / "tables-t80", Path("cifar10-jpeg") / "tables")
_REPO_RESULTS = Path(__file__).resolve().parents[2] / "results"


def _results_root() -> Path:
    local = Path("results")
    return local if local.is_dir() else _REPO_RESULTS


def results_dir(path=None) -> Path:
    """Where table files are read from.

    `path`, else `$KDKERAS_RESULTS_DIR`, else the first `REAL_TABLES` folder
    under `results/` that holds any `table_N.json`, else `results/` (of the
    current directory if it has one, else of the kdkeras checkout).
    """
    if path is not None:
        return Path(path)
    if os.environ.get(RESULTS_ENV):
        return Path(os.environ[RESULTS_ENV])
    root = _results_root()
    return next((root / real for real in REAL_TABLES if any((root / real).glob("table_*.json"))),
                root)


def table_path(number: int, path=None) -> Path:
    """`table_N.json` in `path` or `$KDKERAS_RESULTS_DIR` if given, else in the first
    `REAL_TABLES` folder that holds it, else in `results_dir()`."""
    name = f"table_{number}.json"
    if path is None and not os.environ.get(RESULTS_ENV):
        root = _results_root()
        found = next((root / real / name for real in REAL_TABLES if (root / real / name).exists()),
                     None)
        if found is not None:
            return found
    return results_dir(path) / name


def load_table(number: int, path=None) -> Optional[dict]:
    """The record `experiments/reproduce.py` wrote for table `number`, or None."""
    file = table_path(number, path)
    if not file.exists():
        return None
    try:
        return json.loads(file.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def load_paper(path=None) -> dict:
    """The paper's reported figures (`results/paper_reported.json`)."""
    for candidate in (results_dir(path) / PAPER_FILE, _results_root() / PAPER_FILE,
                      _REPO_RESULTS / PAPER_FILE):
        if candidate.exists():
            return json.loads(candidate.read_text())
    return {"figures": {}, "sources": {}}


def paper_figures(number: int, paper: Optional[dict] = None) -> dict:
    """The figures of the paper that belong to table `number` (key -> figure)."""
    paper = paper if paper is not None else load_paper()
    return {k: f for k, f in paper.get("figures", {}).items() if number in f.get("tables", ())}


def missing_message(number: int, path=None) -> str:
    return (f"**Table {number}: no result yet** (`{table_path(number, path)}` does not exist). "
            f"Run `python experiments/reproduce.py --table={number} --preset=...` to make it.")


# --- Writing ----------------------------------------------------------------------
def finished_rows(record: dict) -> set:
    """The labels of a table record's rows that hold a result."""
    return {r["label"] for r in record.get("rows", ()) if r.get("status") == "ok"}


def write_table_record(path, record: dict, rejected_dir=None) -> tuple[Path, bool]:
    """Writes `record` to `path` unless the file there has a finished row it lacks.

    A row finished in the file and not in `record` (an error, or missing) means
    `record` would lose a result: the file is kept, and `record` goes to
    `rejected_dir/<name>` if given (so the failure can be read). Returns the path
    written and whether it is `path`. The write is atomic (temporary file, rename).
    """
    from kdkeras.training.provenance import write_json_atomic

    path = Path(path)
    old = None
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            old = None   # an unreadable file holds no result to keep
    lost = sorted(finished_rows(old) - finished_rows(record)) if isinstance(old, dict) else []
    if lost:
        if rejected_dir is None:
            return path, False
        target = Path(rejected_dir) / path.name
        write_json_atomic(target, record)
        return target, False
    write_json_atomic(path, record)
    return path, True


# --- Markdown rendering -----------------------------------------------------------
def _pct(value: Optional[float], signed: bool = False, digits: int = 2) -> str:
    if value is None:
        return "—"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


# The paper's epochs (Sec. 4.1): a `paper` preset run with fewer is not the paper's schedule.
_PAPER_EPOCHS = {"imagenet64": 40}
_PAPER_CIFAR_EPOCHS = 200


def _schedule(scale: dict) -> str:
    preset, epochs = scale.get("preset"), scale.get("epochs")
    paper_epochs = _PAPER_EPOCHS.get(scale.get("dataset"), _PAPER_CIFAR_EPOCHS)
    # Files from before the schedule was recorded say `paper` with fewer epochs;
    # newer ones say `paper-shortened` (kdkeras.training.config.preset_label).
    if preset in ("paper", "paper-shortened") and epochs is not None and epochs != paper_epochs:
        return (f"the paper's recipe shortened to {epochs} epochs (preset `paper` with "
                f"--epochs={epochs}; the paper trains {paper_epochs})")
    return f"preset `{preset}`"


def scale_line(record: dict) -> str:
    """One sentence saying what scale a table's numbers came from."""
    s = record.get("scale", {})
    prov = s.get("provenance", {})
    machine = prov.get("machine", {})
    seeds = s.get("seeds", [])
    source = f"{s['dataset_source']}; " if s.get("dataset_source") else ""
    teachers = s.get("teachers")
    if s.get("teachers_dir"):
        teachers = f"{teachers}, given in `{s['teachers_dir']}`"
    elif s.get("teacher_epochs"):
        teachers = f"{teachers}, trained {s['teacher_epochs']} epochs"
    return (f"Scale: {_schedule(s)}, {len(seeds)} seed(s) {seeds}, data "
            f"`{s.get('dataset')}` ({source}{s.get('num_train')} train / {s.get('num_test')} "
            f"test images, {s.get('num_classes')} classes), {s.get('epochs')} epoch(s), batch "
            f"{s.get('batch_size')}; teachers: {teachers}. Commit "
            f"`{prov.get('git_commit', '?')}`, {prov.get('date', '?')}, "
            f"{machine.get('device', '?')}.")


def render_rows(record: dict, paper: Optional[dict] = None) -> str:
    """The accuracy table: each row's top-1 (mean ± std), gap to the baseline, paper figures."""
    figures = paper_figures(record["table"], paper)
    top1_by_row = {f["row"]: f for f in figures.values() if f["kind"] == "top1"}
    gap_by_row = {f["row"]: f for f in figures.values() if f["kind"] == "gap"}
    lines = [f"| row | top-1 % (ours, mean ± std) | Δ vs {record['baseline']} (ours) "
             "| Δ vs the row it differs from, paired by seed [95% CI] (ours) "
             "| top-1 % (paper) | Δ (paper) | gap: ours − paper Δ |",
             "|---|---|---|---|---|---|---|"]
    for row in record["rows"]:
        label = row["label"] + ("" if row.get("in_paper", True) else " *(kdkeras addition)*")
        if row["status"] == "not_applicable":
            lines.append(f"| {label} | n/a: {row.get('reason', '')} | | | | | |")
            continue
        ours = format_mean_std(row.get("top1"))
        if row["status"] == "error":
            ours = f"error: {row.get('reason', '')}"
        elif row["status"] == "missing" and not row.get("runs"):
            ours = "missing"
        delta = row.get("delta_vs_baseline")
        p_top1 = top1_by_row.get(row["label"])
        p_gap = gap_by_row.get(row["label"])
        paper_top1 = f"{p_top1['value']:.2f}" + (" (row assumed)" if p_top1.get("assumption")
                                                 else "") if p_top1 else ""
        paper_gap, gap_gap = "", ""
        if p_gap:
            paper_gap = f"{p_gap['value']:+.2f} (vs {p_gap['over']})"
            ours_gap = _gap(record, row["label"], p_gap["over"])
            gap_gap = _pct(None if ours_gap is None else ours_gap - p_gap["value"], signed=True)
        paired = row.get("paired_vs_compared")
        paired = (f"{format_mean_std(paired, signed=True)} vs {row['compared_with']}"
                  if paired else "—")
        lines.append(f"| {label} | {ours} | {_pct(delta, signed=True)} | {paired} | "
                     f"{paper_top1} | {paper_gap} | {gap_gap} |")
    return "\n".join(lines)


def _gap(record: dict, label: str, over: str) -> Optional[float]:
    rows = {r["label"]: r for r in record["rows"]}
    a, b = rows.get(label, {}).get("top1"), rows.get(over, {}).get("top1")
    if not a or not b or a.get("mean") is None or b.get("mean") is None:
        return None
    return a["mean"] - b["mean"]


def render_cost(record: dict, paper: Optional[dict] = None) -> str:
    """Params / FLOPs / latency of the table's models, and the ratios beside the paper's."""
    cost = record.get("cost")
    if not cost:
        return ""
    figures = paper_figures(record["table"], paper)
    latency_paper = {}
    for f in figures.values():
        if f["kind"] == "latency_ms":
            latency_paper.update(f["value"])
    lines = ["| model | params | FLOPs | latency ms (ours, median) | latency ms (paper) | device |",
             "|---|---|---|---|---|---|"]
    for name, c in cost["models"].items():
        lat = c["latency"]
        paper_ms = latency_paper.get(name)
        lines.append(f"| {name} | {c['params']:,} | {c['flops'] / 1e6:,.1f}M | "
                     f"{lat['median_ms']:.2f} | {'' if paper_ms is None else paper_ms} | "
                     f"{lat['device']} |")
    ratio_paper = {}
    for f in figures.values():
        if f["kind"] == "ratio":
            ratio_paper.update(f["value"])
    lines += ["", "| teacher → student | compression (params) | computation (FLOPs) "
              "| params −% | FLOPs −% | latency speed-up | paper |", "|---|---|---|---|---|---|---|"]
    for i, (pair, r) in enumerate(cost["ratios"].items()):
        paper_text = ", ".join(_RATIO_TEXT[k].format(v) for k, v in ratio_paper.items()
                               if k in _RATIO_TEXT) if i == 0 else ""
        lines.append(f"| {pair} | {r['compression_ratio']:.2f}× | {r['computation_ratio']:.2f}× | "
                     f"{r['params_reduction_pct']:.1f}% | {r['macs_reduction_pct']:.1f}% | "
                     f"{r['latency_speedup']:.2f}× | {paper_text} |")
    if latency_paper:
        lines += ["", "The paper's times are from its own hardware: compare the ratios, "
                      "not the milliseconds."]
    lines += ["", cost.get("note", "")]
    return "\n".join(lines)


_RATIO_TEXT = {"compression_ratio": "{}× params", "computation_ratio": "{}× FLOPs",
               "params_reduction_pct": "params −{}%", "macs_reduction_pct": "FLOPs −{}%"}


def render_figure_notes(record: dict, paper: Optional[dict] = None) -> str:
    """The paper figures of this table with their source and how kdkeras reads them."""
    paper = paper if paper is not None else load_paper()
    sources = paper.get("sources", {})
    items = []
    for key, f in paper_figures(record["table"], paper).items():
        note = f" Reading: {f['assumption']}" if f.get("assumption") else ""
        unit = f" {f['unit']}" if f.get("unit") else ""
        source = sources.get(f["source"], f["source"]).rstrip(".")
        items.append(f"- `{key}` = {f['value']}{unit}: \"{f['quote']}\"; source: {source}.{note}")
    if not items:
        return "The paper's text states no figure of this table (its cells are in an image)."
    return "Paper figures for this table:\n" + "\n".join(items)


def render_table(record: Optional[dict], number: Optional[int] = None,
                 paper: Optional[dict] = None, path=None, source=None) -> str:
    """The whole Markdown block of one table (or the 'missing' message).

    `source`: the file the record was read from, named under the scale line.
    """
    if record is None:
        return missing_message(number, path)
    paper = paper if paper is not None else load_paper(path)
    head = (f"### Table {record['table']}: {record['title']}\n\n"
            f"Status: **{record['status']}**. {scale_line(record)}\n")
    if source is not None:
        head += f"\nRead from `{_shown_path(source)}`.\n"
    parts = [head, render_rows(record, paper)]
    if record.get("cost"):
        parts.append(render_cost(record, paper))
    parts.append(render_figure_notes(record, paper))
    if record.get("notes"):
        parts.append(f"How this table is built: {record['notes']}")
    return "\n\n".join(parts)


def _shown_path(path: Path) -> str:
    """`path` relative to the checkout where it is inside it (as a code host shows it)."""
    try:
        return str(Path(path).resolve().relative_to(_REPO_RESULTS.parent))
    except ValueError:
        return str(path)


def render_document(records, title: str, intro: str = "", paper: Optional[dict] = None) -> str:
    """One Markdown page of several table records: a heading, a paragraph, each table."""
    head = f"# {title}\n\n" + (f"{intro}\n\n" if intro else "")
    return head + "\n\n".join(render_table(r, r["table"], paper) for r in records) + "\n"


def show_table(number: int, path=None) -> Optional[dict]:
    """Displays table `number` as Markdown (in a notebook) or text; returns its record."""
    record = load_table(number, path)
    display_markdown(render_table(record, number, path=path, source=table_path(number, path)))
    return record


def display_markdown(text: str) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display

        if get_ipython() is not None:
            display(Markdown(text))
            return
    except ImportError:
        pass
    print(text)
