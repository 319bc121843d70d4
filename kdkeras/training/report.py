"""Small reports of finished runs: a comparison table and accuracy curves."""

from __future__ import annotations

from pathlib import Path


def comparison_table(rows) -> str:
    """A Markdown table of (name, results) rows: accuracy, epochs, data size, seconds."""
    lines = ["| run | top-1 (test) | epochs | train images | seconds |",
             "|---|---|---|---|---|"]
    for name, r in rows:
        prov = r.get("provenance", {})
        seconds = sum(h.get("seconds", 0.0) for h in r.get("history", []))
        lines.append(f"| {name} | {100 * r['test_accuracy']:.2f}% | {r['epochs']} | "
                     f"{prov.get('num_train', '?')} | {seconds:.0f} |")
    return "\n".join(lines)


def plot_curves(rows, path) -> Path:
    """Test accuracy per epoch of each run, one line each, saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for name, r in rows:
        hist = r.get("history", [])
        ax.plot([h["epoch"] for h in hist], [100 * h.get("val_accuracy", float("nan")) for h in hist],
                marker="o", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test top-1 (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
