"""Plots of the P3 ensemble study (issue 16, docs/ensemble.md): per-variant accuracy and
K-teacher gain, and the teachers' Gram spread against that gain.

Inputs are the files the study writes: a study summary
(`kdkeras.training.ensemble_study.summarise`, `variants-<set>-<scale>.json`) and a
teacher-similarity record (`scripts/diagnose_teacher_grams.py`,
`similarity-<set>.json`). Each function returns a matplotlib Figure, or None
(after saying why) when there is nothing to plot, as `kdkeras.reporting.plots`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Optional

from kdkeras.reporting.plots import _pyplot

# Which Gram spread each variant's students chase: the raw teachers' for the paper's
# P3, the Procrustes-aligned teachers' for `aligned` (its averaged target).
SPREAD_OF_VARIANT = {"ours": "raw", "aligned": "procrustes"}


def load_results(folder) -> tuple[dict, dict]:
    """(similarity by teacher set, study summaries by file stem) from a results folder:
    `similarity-<set>.json` → key `<set>`; `variants-<set>-<scale>.json` → `<set>-<scale>`."""
    folder = Path(folder)
    similarity = {p.stem.removeprefix("similarity-"): json.loads(p.read_text())
                  for p in sorted(folder.glob("similarity-*.json"))}
    studies = {p.stem.removeprefix("variants-"): json.loads(p.read_text())
               for p in sorted(folder.glob("variants-*.json"))}
    return similarity, studies


def _k_range(study: dict) -> tuple[int, int]:
    return min(study["ks"]), max(study["ks"])


def _error(stats: dict) -> tuple[float, float]:
    """(below, above) the mean: the 95 % interval, or 0 when there is none (n < 2)."""
    ci = stats.get("ci95")
    return (0.0, 0.0) if not ci else (stats["mean"] - ci[0], ci[1] - stats["mean"])


def study_scale(study: dict) -> str:
    """The scale of a study's runs in words, for a plot title."""
    s = study.get("scale") or {}
    seeds = sorted({seed for v in study["variants"].values()
                    for k in study["ks"] for seed in v.get(f"K{k}", {}).get("by_seed", {})})
    return (f"{s.get('dataset', '?')}, {s.get('num_train', '?')} training images, "
            f"{s.get('epochs', '?')} epochs (×0.1 every {s.get('lr_decay_every', '?')}), "
            f"{len(seeds)} seeds, {s.get('device', '?')}")


def finished_variants(study: dict) -> list[str]:
    """The study's variants with a paired K_hi − K_lo difference (in the summary's order)."""
    lo, hi = _k_range(study)
    return [name for name, v in study["variants"].items()
            if v.get(f"K{hi}_minus_K{lo}", {}).get("mean") is not None]


def variant_accuracy_and_gain(study: dict, title: Optional[str] = None):
    """Two panels per study: top-1 at K=lo and K=hi per variant (mean ± std over seeds,
    seeds as dots), and the paired gain K=hi − K=lo with its 95 % t-interval."""
    names = finished_variants(study)
    if not names:
        print("No variant of this study has both K runs yet.")
        return None
    lo, hi = _k_range(study)
    plt = _pyplot()
    fig, (acc, gain) = plt.subplots(1, 2, figsize=(10, 3.4))
    for offset, k, marker in ((-0.12, lo, "o"), (0.12, hi, "s")):
        for i, name in enumerate(names):
            stats = study["variants"][name][f"K{k}"]
            acc.errorbar(i + offset, stats["mean"], yerr=stats.get("std") or 0.0, fmt=marker,
                         capsize=3, color="C0" if k == lo else "C3",
                         label=f"K={k}" if i == 0 else None)
            acc.plot([i + 2 * offset] * len(stats["values"]), stats["values"], ".",
                     color="grey", ms=4)
    for ax in (acc, gain):
        ax.set_xlim(-0.6, len(names) - 0.4)
    acc.set_xticks(range(len(names)), names, rotation=20)
    acc.set_ylabel("test top-1 (%)")
    acc.set_title("top-1 per variant (mean ± std; seeds as dots)", fontsize=9)
    acc.legend(fontsize=8)
    acc.grid(alpha=0.3)
    diffs = [study["variants"][name][f"K{hi}_minus_K{lo}"] for name in names]
    errors = [_error(d) for d in diffs]
    gain.errorbar(range(len(names)), [d["mean"] for d in diffs],
                  yerr=[[e[0] for e in errors], [e[1] for e in errors]], fmt="o", capsize=4)
    gain.axhline(0, color="grey", lw=0.8)
    gain.set_xticks(range(len(names)), names, rotation=20)
    gain.set_ylabel(f"K={hi} − K={lo} (points)")
    gain.set_title(f"paired gain of K={hi} over K={lo}, 95 % interval", fontsize=9)
    gain.grid(alpha=0.3)
    fig.suptitle(f"{title or 'teacher set: ' + str(study.get('teacher_set'))}\n"
                 f"{study_scale(study)}", fontsize=9)
    fig.tight_layout()
    return fig


def spread_gain_points(similarity: Mapping[str, dict], studies: Mapping[str, dict]) -> list[dict]:
    """One point per (teacher set, variant of `SPREAD_OF_VARIANT`) measured both ways:
    x the `ours`-convention spread about the mean Gram that the variant averages, y its
    paired K_hi − K_lo difference (mean and 95 % interval)."""
    points = []
    for study in studies.values():
        teacher_set = study.get("teacher_set")
        if teacher_set not in similarity:
            continue
        lo, hi = _k_range(study)
        spread = similarity[teacher_set]["gram_distances"]["ours"]["spread_about_mean_gram"]
        for variant, which in SPREAD_OF_VARIANT.items():
            diff = study["variants"].get(variant, {}).get(f"K{hi}_minus_K{lo}", {})
            if diff.get("mean") is not None:
                points.append({"teacher_set": teacher_set, "variant": variant,
                               "spread": spread[which], "spread_of": which,
                               "gain": diff["mean"], "ci95": diff.get("ci95"), "k": (lo, hi)})
    return points


def spread_against_gain(similarity: Mapping[str, dict], studies: Mapping[str, dict]):
    """The issue-16 hypothesis as a plot: teachers whose Grams are closer (smaller spread
    about the mean Gram) lose less, or gain, from averaging."""
    points = spread_gain_points(similarity, studies)
    if not points:
        print("Not yet: no teacher set has both a similarity measurement and a study of "
              f"{' or '.join(SPREAD_OF_VARIANT)}.")
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    markers = {"ours": "o", "aligned": "s"}
    for i, variant in enumerate(SPREAD_OF_VARIANT):
        mine = [p for p in points if p["variant"] == variant]
        if not mine:
            continue
        errors = [_error({"mean": p["gain"], "ci95": p["ci95"]}) for p in mine]
        ax.errorbar([p["spread"] for p in mine], [p["gain"] for p in mine],
                    yerr=[[e[0] for e in errors], [e[1] for e in errors]], fmt=markers[variant],
                    capsize=3, color=f"C{i}",
                    label=f"{variant} ({SPREAD_OF_VARIANT[variant]} teachers' spread)")
        for p in mine:
            ax.annotate(p["teacher_set"], (p["spread"], p["gain"]), fontsize=7,
                        xytext=(4, 3), textcoords="offset points")
    lo, hi = points[0]["k"]
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xscale("log")
    spreads = [p["spread"] for p in points]
    ticks = [t for t in (0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50)
             if min(spreads) / 2 <= t <= 2 * max(spreads)]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("spread about the mean Gram, `ours` convention (log)")
    ax.set_ylabel(f"K={hi} − K={lo} top-1 (points)")
    ax.set_title("Gram spread against the K-teacher gain (95 % intervals)", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
