"""Mean ± std over seeds, and the compact per-run records a table file keeps.

Results are reported as mean ± sample standard deviation (n − 1 in the
denominator) over seeds, in percent, as the paper's accuracies are; one seed
has no spread (std None), never a misleading 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Optional

# The per-epoch values a table file keeps from a run's history (the curves the
# notebooks plot); the run directory keeps everything else.
HISTORY_KEYS = ("epoch", "accuracy", "val_accuracy", "loss", "val_loss", "ce", "kl", "feature",
                "beta", "tau", "lr", "seconds")


def mean_std(values: Sequence[float]) -> dict:
    """`{"mean", "std", "n", "values"}`: std is the sample std, None for n < 2."""
    values = [float(v) for v in values]
    n = len(values)
    if not n:
        return {"mean": None, "std": None, "n": 0, "values": []}
    mean = math.fsum(values) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return {"mean": mean, "std": std, "n": n, "values": values}


# Student's t quantile t_{0.975, df} for the 95% interval of a mean over few seeds.
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
         9: 2.262, 10: 2.228, 15: 2.131, 20: 2.086, 30: 2.042}


def t975(df: int) -> float:
    """t_{0.975, df} (the nearest tabulated df at or below; 1.96 past 30)."""
    if df < 1:
        raise ValueError(f"A t interval needs df >= 1. Received: df={df}")
    return 1.96 if df > 30 else _T975[max(k for k in _T975 if k <= df)]


def paired_difference(a_by_seed: dict, b_by_seed: dict, scale: float = 1.0) -> Optional[dict]:
    """scale·(a − b) on the seeds both have: mean ± std (n − 1) and the 95% t interval.

    `{"mean", "std", "n", "seeds", "per_seed", "ci95"}`; no interval with one
    seed, None without a common seed.
    """
    seeds = sorted(set(a_by_seed) & set(b_by_seed))
    if not seeds:
        return None
    stats = mean_std([scale * (a_by_seed[s] - b_by_seed[s]) for s in seeds])
    n, std = stats["n"], stats["std"]
    half = t975(n - 1) * std / math.sqrt(n) if n > 1 else None
    return {"mean": stats["mean"], "std": std, "n": n, "seeds": seeds,
            "per_seed": stats["values"],
            "ci95": [stats["mean"] - half, stats["mean"] + half] if half is not None else None}


def top1(results: Sequence[dict], key: str = "test_accuracy") -> dict:
    """`mean_std` of 100 × `key` over runs' results dicts (accuracy in percent)."""
    return mean_std([100.0 * r[key] for r in results if r.get(key) is not None])


def difference(a: Optional[dict], b: Optional[dict]) -> Optional[float]:
    """a.mean − b.mean (percentage points), None when either is missing."""
    if not a or not b or a.get("mean") is None or b.get("mean") is None:
        return None
    return a["mean"] - b["mean"]


def compact_history(history: Sequence[dict]) -> list[dict]:
    """The rows of a run's history restricted to `HISTORY_KEYS`."""
    return [{k: row[k] for k in HISTORY_KEYS if k in row} for row in history]


def format_mean_std(stats: Optional[dict], digits: int = 2, signed: bool = False) -> str:
    """'66.67 ± 0.31 (n=3)', '66.67 (n=1)' or '—'; a `paired_difference` with
    `signed=True`: '+1.20 ± 0.40 [+0.21, +2.19] (n=3)' (its 95% interval)."""
    if not stats or stats.get("mean") is None:
        return "—"
    text = f"{stats['mean']:{'+' if signed else ''}.{digits}f}"
    if stats.get("std") is not None:
        text += f" ± {stats['std']:.{digits}f}"
    if stats.get("ci95"):
        text += f" [{stats['ci95'][0]:+.{digits}f}, {stats['ci95'][1]:+.{digits}f}]"
    return f"{text} (n={stats['n']})"
