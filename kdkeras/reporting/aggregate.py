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


def format_mean_std(stats: Optional[dict], digits: int = 2) -> str:
    """'66.67 ± 0.31 (n=3)', '66.67 (n=1)' or '—'."""
    if not stats or stats.get("mean") is None:
        return "—"
    text = f"{stats['mean']:.{digits}f}"
    if stats.get("std") is not None:
        text += f" ± {stats['std']:.{digits}f}"
    return f"{text} (n={stats['n']})"
