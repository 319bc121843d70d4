"""Draws the ensemble study's plots (issue 16) from its result files, as PNGs beside them.

    python scripts/plot_ensemble.py results/cifar10-jpeg/ensemble

Reads `similarity-<set>.json` and `variants-<set>-<scale>.json`
(`kdkeras.reporting.ensemble_plots.load_results`) and writes
`variants-<set>-<scale>.png` (top-1 per variant at K=1 and K=3, and the paired
gain with its 95 % interval) for every study, and `spread-vs-gain.png` (each
teacher set's Gram spread against the K=3 − K=1 gain). docs/ensemble.md shows them.
"""

from pathlib import Path

from absl import app


def main(argv):
    if len(argv) != 2:
        raise app.UsageError("usage: plot_ensemble.py DIR")
    import matplotlib

    matplotlib.use("Agg")
    from kdkeras.reporting import ensemble_plots

    folder = Path(argv[1])
    similarity, studies = ensemble_plots.load_results(folder)
    if not studies:
        raise app.UsageError(f"No variants-*.json in {folder}.")
    figures = {f"variants-{name}.png": ensemble_plots.variant_accuracy_and_gain(
        study, title=f"{name}: teacher set {study.get('teacher_set')}")
        for name, study in studies.items()}
    figures["spread-vs-gain.png"] = ensemble_plots.spread_against_gain(similarity, studies)
    for filename, fig in figures.items():
        if fig is not None:
            fig.savefig(folder / filename, dpi=90)
            print(folder / filename)


if __name__ == "__main__":
    app.run(main)
