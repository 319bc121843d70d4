"""The ensemble study's plots show the numbers of the summaries they are given."""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from kdkeras.reporting import ensemble_plots

RESULTS = Path(__file__).resolve().parents[2] / "results" / "cifar10-jpeg" / "ensemble"


def _stats(values):
    values = np.asarray(values, float)
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)), "n": len(values),
            "values": list(values), "by_seed": {str(i): v for i, v in enumerate(values)}}


def _variant(k1, k3, ci):
    diff = np.asarray(k3) - np.asarray(k1)
    return {"options": [], "K1": _stats(k1), "K3": _stats(k3),
            "K3_minus_K1": {"mean": float(diff.mean()), "n": len(diff), "ci95": ci,
                            "per_seed": list(diff)}}


def _unfinished():
    return {"options": [], "K1": _stats([50.0, 51.0]), "K3": {"mean": None, "n": 0, "values": []},
            "K3_minus_K1": {"mean": None, "n": 0, "ci95": None}}


def _similarity(raw, procrustes):
    return {"gram_distances": {"ours": {"spread_about_mean_gram": {"raw": raw, "procrustes": procrustes}}}}


STUDY = {"teacher_set": "independent", "ks": [1, 3], "variants": {
    "ours": _variant([57.0, 56.0, 58.0], [53.0, 52.0, 51.0], [-9.0, -1.0]),       # gain −5
    "confidence": _unfinished(),
    "aligned": _variant([57.0, 56.0, 58.0], [56.0, 56.0, 57.0], [-1.5, +0.2])}}   # gain −2/3
SNAPSHOT = {"teacher_set": "snapshot", "ks": [1, 3],
            "variants": {"ours": _variant([57.0, 57.0, 57.0], [56.0, 55.0, 57.0], [-3.5, +1.5])}}
UNMEASURED = {"teacher_set": "branched", "ks": [1, 3],
              "variants": {"ours": _variant([57.0, 57.0, 57.0], [58.0, 58.0, 58.0], None)}}
SIMILARITY = {"independent": _similarity(7.8, 1.7), "snapshot": _similarity(0.44, 0.22)}


def test_spread_gain_points_pair_each_variant_with_the_spread_it_averages():
    points = ensemble_plots.spread_gain_points(
        SIMILARITY, {"a": STUDY, "b": SNAPSHOT, "c": UNMEASURED})
    got = [(p["teacher_set"], p["variant"], p["spread"], round(p["gain"], 6), p["ci95"]) for p in points]
    assert got == [("independent", "ours", 7.8, -5.0, [-9.0, -1.0]),
                   ("independent", "aligned", 1.7, round(-2 / 3, 6), [-1.5, 0.2]),
                   ("snapshot", "ours", 0.44, -1.0, [-3.5, 1.5])]      # branched: no similarity


def test_variant_plot_shows_the_means_and_intervals_of_finished_variants():
    assert ensemble_plots.finished_variants(STUDY) == ["ours", "aligned"]
    fig = ensemble_plots.variant_accuracy_and_gain(STUDY)
    acc, gain = fig.axes
    assert [t.get_text() for t in gain.get_xticklabels()] == ["ours", "aligned"]
    (line,) = [l for l in gain.lines if l.get_marker() == "o"]      # not the caps' lines
    np.testing.assert_allclose(np.asarray(line.get_ydata(), float), [-5.0, -2 / 3])
    bars = gain.collections[0].get_segments()                  # the 95 % intervals
    np.testing.assert_allclose([[s[0][1], s[1][1]] for s in bars], [[-9.0, -1.0], [-1.5, 0.2]])
    points = sorted(float(y) for l in acc.lines if l.get_marker() in "os" for y in l.get_ydata())
    assert points == pytest.approx(sorted([57.0, 52.0, 57.0, 56 + 1 / 3]))   # K=1, K=3 means


def test_nothing_to_plot_says_so_and_returns_none(capsys):
    assert ensemble_plots.variant_accuracy_and_gain(
        {"teacher_set": "x", "ks": [1, 3], "variants": {"ours": _unfinished()}}) is None
    assert ensemble_plots.spread_against_gain({}, {"a": STUDY}) is None
    out = capsys.readouterr().out
    assert "No variant" in out and "Not yet" in out


def test_spread_plot_places_each_point_at_its_spread_and_gain():
    fig = ensemble_plots.spread_against_gain(SIMILARITY, {"a": STUDY, "b": SNAPSHOT})
    (ax,) = fig.axes
    data = sorted((float(x), float(y)) for l in ax.lines if l.get_marker() in "os"
                  for x, y in zip(l.get_xdata(), l.get_ydata()))
    np.testing.assert_allclose(data, sorted([(7.8, -5.0), (0.44, -1.0), (1.7, -2 / 3)]))


@pytest.mark.skipif(not list(RESULTS.glob("variants-*.json")), reason="no committed study")
def test_committed_summaries_plot():
    studies = {p.stem: json.loads(p.read_text()) for p in RESULTS.glob("variants-*.json")}
    similarity = {p.stem.removeprefix("similarity-"): json.loads(p.read_text())
                  for p in RESULTS.glob("similarity-*.json")}
    for study in studies.values():
        assert ensemble_plots.variant_accuracy_and_gain(study) is not None
    points = ensemble_plots.spread_gain_points(similarity, studies)
    independent = json.loads((RESULTS / "variants-independent-10k.json").read_text())
    ours = [p for p in points if (p["teacher_set"], p["variant"]) == ("independent", "ours")]
    assert [p["gain"] for p in ours] == [independent["variants"]["ours"]["K3_minus_K1"]["mean"]]
    assert ensemble_plots.spread_against_gain(similarity, studies) is not None
