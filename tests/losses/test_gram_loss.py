"""Gram matrices, cross-layer pairs and the Eq. 4 loss against NumPy done by hand."""

import keras
import numpy as np
import pytest

from kdkeras import losses

from gram_reference import np_gram, np_gram_loss

RNG = np.random.default_rng(0)


def _maps(*shapes):
    return [RNG.normal(size=s).astype("float32") for s in shapes]


# --- gram_matrix ----------------------------------------------------------------------
def test_gram_matrix_by_hand():
    f1 = np.array([[1.0, 2.0], [3.0, 4.0]], "float32").reshape(1, 2, 2, 1)
    f2 = np.stack([np.ones((2, 2)), np.eye(2)], axis=-1).astype("float32")[None]
    # G[0,0] = (1+2+3+4)/4, G[0,1] = (1+4)/4
    np.testing.assert_allclose(np.asarray(losses.gram_matrix(f1, f2)), [[[2.5, 1.25]]])


@pytest.mark.parametrize("pool, expected", [("avg", 7.5), ("max", 10.0)])
def test_gram_matrix_pools_the_larger_map_by_hand(pool, expected):
    f1 = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
    f2 = np.ones((1, 2, 2, 1), "float32")
    # avg pool: [[2.5, 4.5], [10.5, 12.5]] -> mean 7.5; max pool: [[5, 7], [13, 15]] -> mean 10
    np.testing.assert_allclose(np.asarray(losses.gram_matrix(f1, f2, pool=pool)), [[[expected]]])
    # the later map may be the larger one too
    np.testing.assert_allclose(np.asarray(losses.gram_matrix(f2, f1, pool=pool)), [[[expected]]])


@pytest.mark.parametrize("pool", ["avg", "max"])
@pytest.mark.parametrize("shapes", [
    ((2, 4, 4, 3), (2, 2, 2, 5)),   # non-square Gram, 2x pooling
    ((2, 2, 2, 5), (2, 4, 4, 3)),
    ((2, 4, 4, 3), (2, 4, 4, 5)),   # same size, no pooling
    ((2, 3, 3, 2), (2, 2, 2, 4)),   # non-integer ratio: adaptive bins
    ((2, 4, 2, 3), (2, 2, 4, 2)),   # each map larger in one dimension
])
def test_gram_matrix_matches_numpy(shapes, pool):
    f1, f2 = _maps(*shapes)
    got = np.asarray(losses.gram_matrix(f1, f2, pool=pool))
    assert got.shape == (2, shapes[0][-1], shapes[1][-1])
    np.testing.assert_allclose(got, np_gram(f1, f2, pool), rtol=1e-5, atol=1e-6)


def test_gram_matrix_computes_half_precision_in_float32():
    f1, f2 = _maps((2, 4, 4, 3), (2, 2, 2, 5))
    got = losses.gram_matrix(f1.astype("float16"), f2.astype("float16"))
    assert keras.backend.standardize_dtype(got.dtype) == "float32"


@pytest.mark.parametrize("f1_shape, f2_shape, match", [
    ((2, 4, 4), (2, 2, 2, 5), "rank 4"),
    ((2, 4, 4, 3), (3, 2, 2, 5), "same batch size"),
])
def test_gram_matrix_rejects_bad_shapes(f1_shape, f2_shape, match):
    f1, f2 = _maps(f1_shape, f2_shape)
    with pytest.raises(ValueError, match=match):
        losses.gram_matrix(f1, f2)


def test_gram_matrix_rejects_unknown_pool():
    f1, f2 = _maps((2, 4, 4, 3), (2, 2, 2, 5))
    with pytest.raises(ValueError, match="pool"):
        losses.gram_matrix(f1, f2, pool="median")


# --- cross_layer_pairs ----------------------------------------------------------------
@pytest.mark.parametrize("names, depth, expected", [
    ("abc", 1, [("a", "b"), ("b", "c")]),
    ("abc", 2, [("a", "b"), ("b", "c"), ("a", "c")]),
    ("abc", {2}, [("a", "c")]),
    ("abcd", 1, [("a", "b"), ("b", "c"), ("c", "d")]),
    ("abcd", 2, [("a", "b"), ("b", "c"), ("c", "d"), ("a", "c"), ("b", "d")]),
    ("abcd", 3, [("a", "b"), ("b", "c"), ("c", "d"), ("a", "c"), ("b", "d"), ("a", "d")]),
    ("abcd", {2}, [("a", "c"), ("b", "d")]),
    ("abcd", (3,), [("a", "d")]),
    ("abcd", [3, 1], [("a", "b"), ("b", "c"), ("c", "d"), ("a", "d")]),
    ("abcde", 4, [("a", "b"), ("b", "c"), ("c", "d"), ("d", "e"),
                  ("a", "c"), ("b", "d"), ("c", "e"),
                  ("a", "d"), ("b", "e"),
                  ("a", "e")]),
    ("abcde", {4}, [("a", "e")]),
    ("abcde", frozenset({2, 3}), [("a", "c"), ("b", "d"), ("c", "e"), ("a", "d"), ("b", "e")]),
])
def test_cross_layer_pairs_exact_lists(names, depth, expected):
    assert losses.cross_layer_pairs(list(names), depth) == expected


def test_cross_layer_pairs_takes_positions():
    assert losses.cross_layer_pairs(range(3), 2) == [(0, 1), (1, 2), (0, 2)]


@pytest.mark.parametrize("names, depth", [
    ("abc", 0), ("abc", 3), ("abc", -1), ("abc", 1.0), ("abc", True), ("abc", "2"),
    ("abc", set()), ("abc", {0}), ("abc", {1, 3}), ("abcd", None), ("a", 1), ("aab", 1),
])
def test_cross_layer_pairs_rejects_bad_input(names, depth):
    with pytest.raises(ValueError):
        losses.cross_layer_pairs(list(names), depth)


def test_cross_layer_pairs_error_names_the_valid_range():
    with pytest.raises(ValueError, match=r"1\.\.3 for 4 taps"):
        losses.cross_layer_pairs(["a", "b", "c", "d"], 4)


# --- gram_loss ------------------------------------------------------------------------
SHAPES = [(2, 4, 4, 3), (2, 2, 2, 5), (2, 1, 1, 4)]


@pytest.fixture
def feats():
    t = _maps(*SHAPES)
    s = [x + 0.5 * RNG.normal(size=x.shape).astype("float32") for x in t]
    return t, s


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("pool", ["avg", "max"])
@pytest.mark.parametrize("depth", [1, 2, {2}])
def test_gram_loss_matches_numpy(feats, reduction, pool, depth):
    t, s = feats
    pairs = losses.cross_layer_pairs(range(3), depth)
    got = np.asarray(losses.gram_loss(t, s, pairs, reduction=reduction, weight=0.3, pool=pool))
    want = np_gram_loss(t, s, pairs, reduction, [0.3] * len(pairs), pool)
    assert got.shape == (2,)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_gram_loss_default_is_mean_with_unit_weight(feats):
    t, s = feats
    pairs = losses.cross_layer_pairs(range(3), 2)
    np.testing.assert_allclose(np.asarray(losses.gram_loss(t, s, pairs)),
                               np_gram_loss(t, s, pairs, "mean", [1.0] * 3, "avg"), rtol=1e-5)


def test_gram_loss_sum_is_mean_times_entries(feats):
    t, s = feats
    pair = [(0, 1)]  # a 3x5 Gram
    np.testing.assert_allclose(np.asarray(losses.gram_loss(t, s, pair, reduction="sum")),
                               15 * np.asarray(losses.gram_loss(t, s, pair, reduction="mean")),
                               rtol=1e-5)


@pytest.mark.parametrize("depth", [1, 2, {2}])
def test_gram_loss_mean_over_pairs_is_eq4_as_printed(feats, depth):
    # Eq. 4: L_KD = (1/B) Σ_b λ‖G_T,b − G_S,b‖², B the number of Gram matrices (pairs):
    # per example, the entries' sums averaged over the pairs.
    t, s = feats
    pairs = losses.cross_layer_pairs(range(3), depth)
    per_pair = [np_gram_loss(t, s, [p], "sum", [0.3], "avg") for p in pairs]
    got = np.asarray(losses.gram_loss(t, s, pairs, reduction="mean_over_pairs", weight=0.3))
    np.testing.assert_allclose(got, np.mean(per_pair, axis=0), rtol=1e-5)
    # "sum" is B times it: the factor the docs used to call "Eq. 4 exactly".
    np.testing.assert_allclose(np.asarray(losses.gram_loss(t, s, pairs, reduction="sum",
                                                           weight=0.3)),
                               len(pairs) * got, rtol=1e-5)


def test_distiller_feature_term_with_mean_over_pairs_is_eq4_mean_over_the_batch():
    # Six pairs (4 taps, cross-three) and K = 2: the Distiller's term is the teacher
    # mean of the batch mean of Eq. 4, i.e. 1/6 of what "sum" gives.
    from kdkeras import models
    from kdkeras.distill import Distiller, feature_terms, method_config

    shape = dict(num_classes=3, input_shape=(8, 8, 3))
    keras.utils.set_random_seed(1)
    nets = [models.get("resnet8", **shape) for _ in range(3)]
    x = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    values = {}
    for reduction in ("mean_over_pairs", "sum"):
        d = Distiller(nets[0], nets[1:], method_config("ours", gram_reduction=reduction,
                                                       gram_weight=0.5), weight_decay=0.0)
        assert len(d.pairs) == 6
        t_feats = [[keras.ops.stop_gradient(f) for f in out[1:]] for out in d.teacher_outputs(x)]
        s_feats = d.student_outputs(x, training=False)[1:]
        values[reduction] = float(feature_terms.feature_term(d, t_feats, s_feats))
        by_hand = np.mean([np.mean(np.asarray(losses.gram_loss(
            [np.asarray(f) for f in t], [np.asarray(f) for f in s_feats], d.pairs,
            reduction=reduction, weight=0.5))) for t in t_feats])
        np.testing.assert_allclose(values[reduction], by_hand, rtol=1e-4)
    np.testing.assert_allclose(values["sum"], 6 * values["mean_over_pairs"], rtol=1e-4)


def test_gram_loss_per_pair_weights(feats):
    t, s = feats
    pairs = losses.cross_layer_pairs(range(3), 2)
    got = np.asarray(losses.gram_loss(t, s, pairs, weight=[1.0, 0.0, 2.0]))
    np.testing.assert_allclose(got, np_gram_loss(t, s, pairs, "mean", [1.0, 0.0, 2.0], "avg"),
                               rtol=1e-5)


def test_gram_loss_takes_named_mappings(feats):
    t, s = feats
    names = ["tap_stage1", "tap_stage2", "tap_stage3"]
    pairs = losses.cross_layer_pairs(names, 2)
    got = losses.gram_loss(dict(zip(names, t)), dict(zip(names, s)), pairs)
    want = losses.gram_loss(t, s, losses.cross_layer_pairs(range(3), 2))
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6)


def test_gram_loss_is_zero_when_student_equals_teacher(feats):
    t, _ = feats
    pairs = losses.cross_layer_pairs(range(3), 2)
    for reduction in ("sum", "mean"):
        np.testing.assert_array_equal(np.asarray(losses.gram_loss(t, t, pairs, reduction=reduction)),
                                      [0.0, 0.0])


def test_gram_loss_spatial_sizes_may_differ_between_nets():
    t = _maps((2, 4, 4, 3), (2, 2, 2, 5))
    s = _maps((2, 8, 8, 3), (2, 4, 4, 5))
    assert losses.gram_loss(t, s, [(0, 1)]).shape == (2,)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_gram_loss_gradients_are_finite_and_teacher_is_constant(feats, gradients, reduction):
    t, s = feats
    pairs = losses.cross_layer_pairs(range(3), 2)
    g_t, g_s = gradients(lambda t, s: losses.gram_loss(t, s, pairs, reduction=reduction), t, s)
    for g in g_s:
        assert np.all(np.isfinite(g)) and np.any(g != 0)
    for g in g_t:
        assert g is None or not np.any(g)


def test_gram_loss_compiles_under_xla(feats, compiled):
    t, s = feats
    pairs = losses.cross_layer_pairs(range(3), 2)
    fn = compiled(lambda t, s: losses.gram_loss(t, s, pairs, pool="max"))
    np.testing.assert_allclose(np.asarray(fn(t, s)), np.asarray(losses.gram_loss(t, s, pairs, pool="max")),
                               rtol=1e-5)


def test_gram_loss_rejects_bad_arguments(feats):
    t, s = feats
    pairs = [(0, 1)]
    with pytest.raises(ValueError, match="reduction"):
        losses.gram_loss(t, s, pairs, reduction="batchmean")
    with pytest.raises(ValueError, match="pool"):
        losses.gram_loss(t, s, pairs, pool="min")
    with pytest.raises(ValueError, match="empty"):
        losses.gram_loss(t, s, [])
    with pytest.raises(ValueError, match="one value per pair"):
        losses.gram_loss(t, s, pairs, weight=[1.0, 2.0])
    with pytest.raises(ValueError, match="rank 4"):
        losses.gram_loss([t[0], t[1][:, :, :, 0]], s, pairs)
    with pytest.raises(ValueError, match="same batch size"):
        losses.gram_loss([x[:1] for x in t], s, pairs)
    with pytest.raises(ValueError, match="channel counts must match"):
        losses.gram_loss(t, [s[0], s[1][..., :4]], pairs)
    with pytest.raises(ValueError, match="out of range"):
        losses.gram_loss(t, s, [(0, 3)])
    with pytest.raises(ValueError, match="integer positions"):
        losses.gram_loss(t, s, [("tap_a", "tap_b")])
    with pytest.raises(ValueError, match="not in `student_feats`"):
        losses.gram_loss({"a": t[0], "b": t[1]}, {"a": s[0], "c": s[1]}, [("a", "b")])
