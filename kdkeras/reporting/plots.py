"""Plots of reproduced tables: accuracy curves, β over training, ablation bars.

Each function takes table records (`tables_io.load_table`) and returns a
matplotlib Figure, or None (after saying why) when there is nothing to plot,
so a notebook cell never fails on a missing or partial table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Optional

import numpy as np


def _pyplot():
    import matplotlib.pyplot as plt

    return plt


def scale_title(record: dict) -> str:
    """The data and scale of a table's runs, for a plot title (e.g. 'cifar10_jpeg, 10000
    images, 12 epochs, 3 seeds')."""
    s = record.get("scale", {})
    seeds = len(s.get("seeds", []))
    return (f"{s.get('dataset', '?')}, {s.get('num_train', '?')} images, "
            f"{s.get('epochs', '?')} epochs, {seeds} seed{'s' if seeds != 1 else ''}")


def _legend_outside(ax) -> None:
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def _records(records) -> list[dict]:
    if isinstance(records, dict):
        records = [records]
    return [r for r in records if r]


def mean_curve(row: dict, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(epochs, mean, std) of history `key` over a row's seeds (epochs all seeds reached)."""
    curves = [[(h["epoch"], h[key]) for h in run.get("history", []) if key in h]
              for run in row.get("runs", [])]
    curves = [c for c in curves if c]
    if not curves:
        return np.array([]), np.array([]), np.array([])
    n = min(len(c) for c in curves)
    values = np.array([[v for _, v in c[:n]] for c in curves], dtype=float)
    epochs = np.array([e for e, _ in curves[0][:n]])
    std = values.std(axis=0, ddof=1) if len(values) > 1 else np.zeros(n)
    return epochs, values.mean(axis=0), std


def accuracy_curves(records, labels: Optional[Sequence[str]] = None, key: str = "val_accuracy"):
    """Test top-1 per epoch (mean over seeds, ±1 std band), one panel per table."""
    records = _records(records)
    if not records:
        print("No table results to plot.")
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(records), figsize=(5 * len(records), 3.6), squeeze=False)
    for ax, record in zip(axes[0], records):
        for row in record["rows"]:
            if labels is not None and row["label"] not in labels:
                continue
            epochs, mean, std = mean_curve(row, key)
            if not len(epochs):
                continue
            line, = ax.plot(epochs, 100 * mean, marker="o", ms=3, label=row["label"])
            ax.fill_between(epochs, 100 * (mean - std), 100 * (mean + std), alpha=0.15,
                            color=line.get_color())
        ax.set_title(f"Table {record['table']}: {record['pair']}\n{scale_title(record)}",
                     fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("test top-1 (%)")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            _legend_outside(ax)
    fig.tight_layout()
    return fig


def beta_curves(records):
    """β per epoch (mean over seeds) of every row whose runs logged it (the β-step runs)."""
    records = _records(records)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    plotted = 0
    for record in records:
        for row in record["rows"]:
            epochs, mean, _ = mean_curve(row, "beta")
            if not len(epochs) or not np.isfinite(mean).any():
                continue
            ax.plot(epochs, mean, marker="o", ms=3,
                    label=f"Table {record['table']}: {row['label']}")
            plotted += 1
    if not plotted:
        plt.close(fig)
        print("No run with a logged β in these tables (β is logged by the KD runs).")
        return None
    ax.set_xlabel("epoch")
    ax.set_ylabel("β (mean over the epoch)")
    ax.set_title("β = 1 / (1 + exp(−τ + p)) over training\n"
                 + "; ".join(f"Table {r['table']}: {scale_title(r)}" for r in records), fontsize=9)
    ax.grid(alpha=0.3)
    _legend_outside(ax)
    fig.tight_layout()
    return fig


def ablation_bars(records, paper_gaps: Optional[dict] = None):
    """Each row's gap to its table's baseline (mean ± std of top-1, in points).

    `paper_gaps` maps (table number, row label) -> the paper's gap, drawn as a
    black marker beside our bar.
    """
    records = _records(records)
    if not records:
        print("No table results to plot.")
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(records), figsize=(5 * len(records), 3.8), squeeze=False)
    for ax, record in zip(axes[0], records):
        rows = [r for r in record["rows"] if r.get("delta_vs_baseline") is not None
                and r["label"] != record["baseline"]]
        if not rows:
            ax.text(0.5, 0.5, "no results yet", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            continue
        x = np.arange(len(rows))
        stds = [r["top1"].get("std") or 0.0 for r in rows]
        ax.bar(x, [r["delta_vs_baseline"] for r in rows], yerr=stds, capsize=3,
               color=["tab:blue" if r.get("in_paper", True) else "tab:gray" for r in rows],
               label="ours")
        marks = [(i, (paper_gaps or {}).get((record["table"], r["label"])))
                 for i, r in enumerate(rows)]
        marks = [(i, v) for i, v in marks if v is not None]
        if marks:
            ax.plot([i for i, _ in marks], [v for _, v in marks], "k_", ms=18, mew=2,
                    label="paper")
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(x)
        ax.set_xticklabels([r["label"] for r in rows], rotation=35, ha="right", fontsize=7)
        ax.set_ylabel(f"Δ top-1 vs {record['baseline']} (points)", fontsize=8)
        ax.set_title(f"Table {record['table']}: {record['pair']}\n{scale_title(record)}",
                     fontsize=9)
        # Outside the axes, so that no bar or paper marker is hidden under it.
        _legend_outside(ax)
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def paper_gaps(paper: dict, numbers: Iterable[int]) -> dict:
    """(table, row label) -> the paper's gap, for `ablation_bars`."""
    out = {}
    for f in paper.get("figures", {}).values():
        if f.get("kind") == "gap":
            for n in f.get("tables", ()):
                if n in numbers:
                    out[(n, f["row"])] = f["value"]
    return out
