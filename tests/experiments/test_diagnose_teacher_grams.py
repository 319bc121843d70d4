"""scripts/diagnose_teacher_grams.py on teachers related by known transforms of their taps."""

import importlib.util

import keras
import numpy as np
import pytest

from helpers import REPO

spec = importlib.util.spec_from_file_location(
    "diagnose_teacher_grams", REPO / "scripts" / "diagnose_teacher_grams.py")
diagnose = importlib.util.module_from_spec(spec)
spec.loader.exec_module(diagnose)

SHAPES = [(6, 4, 4, 3), (6, 4, 4, 3), (6, 2, 2, 4), (6, 1, 1, 5)]


def _orthogonal(c, seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(c, c)))
    return q.astype("float32")


def _taps(seed):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=s).astype("float32") for s in SHAPES]


def _transformed(feats, maps):
    return [f @ m for f, m in zip(feats, maps)]


def test_rotated_and_permuted_teachers():
    """b = a with every tap rotated, c = a with every tap's channels permuted."""
    rotations = [_orthogonal(s[-1], i) for i, s in enumerate(SHAPES)]
    perms = [np.eye(s[-1], dtype="float32")[np.random.default_rng(i).permutation(s[-1])]
             for i, s in enumerate(SHAPES)]
    test_a, fit_a = _taps(1), _taps(2)
    test = [test_a, _transformed(test_a, rotations), _transformed(test_a, perms)]
    fit = [fit_a, _transformed(fit_a, rotations), _transformed(fit_a, perms)]
    out = diagnose.measure(test, fit)
    for pair, cka in out["cka_per_tap"].items():
        np.testing.assert_allclose(cka, 1.0, atol=1e-5, err_msg=pair)
    ours, fsp = out["gram_distances"]["ours"], out["gram_distances"]["fsp"]
    assert ours["pairs"] == [[0, 1], [1, 2], [2, 3], [0, 2], [1, 3], [0, 3]]
    assert fsp["pairs"] == [[0, 1], [1, 2], [2, 3]] and fsp["pool"] == "max"
    for conv in (ours, fsp):
        assert conv["pairwise"]["0-1"]["raw"] > 1e-2 and conv["spread_about_mean_gram"]["raw"] > 1e-3
        # A permutation commutes with either pooling: matching channels or rotating undoes it.
        assert conv["pairwise"]["0-2"]["permuted"] == pytest.approx(0.0, abs=1e-7)
        assert conv["pairwise"]["0-2"]["procrustes"] == pytest.approx(0.0, abs=1e-7)
    # A rotation commutes with average pooling (ours), not with max pooling (fsp).
    assert ours["pairwise"]["0-1"]["procrustes"] == pytest.approx(0.0, abs=1e-7)
    assert ours["spread_about_mean_gram"]["procrustes"] == pytest.approx(0.0, abs=1e-7)


def test_spread_and_distance_by_hand():
    # One 1×1 Gram per teacher, 1 and 3, sum reduction, λ = 2: d = 2·(3 − 1)² = 8;
    # spread = 2·((1 − 2)² + (3 − 2)²)/2 = 2.
    conv = ([(0, 1)], "sum", 2.0, "avg")
    g1, g3 = [np.ones((1, 1, 1))], [3 * np.ones((1, 1, 1))]
    assert diagnose.distance(g1, g3, conv).tolist() == [8.0]
    assert diagnose.spread([g1, g3], conv).tolist() == [2.0]


def test_teachers_get_the_inputs_they_were_trained_on():
    images = np.full((1, 2, 2, 3), 51.0, "float32")          # 51/255 = 0.2
    plain = keras.Sequential([keras.Input((2, 2, 3)), keras.layers.Identity()])
    x, how = diagnose.model_inputs(plain, images, (0.1, 0.2, 0.4), (0.5, 0.5, 0.25))
    np.testing.assert_allclose(x[0, 0, 0], [0.2, 0.0, -0.8], atol=1e-6)
    assert "mean" in how
    owning = keras.Sequential([keras.Input((2, 2, 3)),
                               keras.layers.Rescaling(1 / 255, name="input_normalization")])
    x, how = diagnose.model_inputs(owning, images, (0.1, 0.2, 0.4), (0.5, 0.5, 0.25))
    np.testing.assert_array_equal(x, images)
    assert "input_normalization" in how
