"""The Distiller's K-teacher feature term: one student Gram per pair, same value and gradients.

Reference: the K-term form (one loss per teacher, averaged), which the earlier
Distiller computed, and the Gram loss in NumPy for the default method.
"""

import keras
import numpy as np
import pytest

from kdkeras import losses, models
from kdkeras.distill import Distiller, feature_terms, method_config
from kdkeras.distill.adapters import linear_kernel

if keras.backend.backend() != "tensorflow":
    pytest.skip("the gradient comparison uses tf.GradientTape", allow_module_level=True)

import tensorflow as tf  # noqa: E402

SHAPE = dict(num_classes=3, input_shape=(8, 8, 3))


def _distiller(k, **overrides):
    keras.utils.set_random_seed(3)
    teachers = [models.get("resnet8", **SHAPE) for _ in range(k)]
    return Distiller(models.get("resnet8", **SHAPE), teachers,
                     method_config("ours", **overrides), weight_decay=0.0)


def _both_forms(d, x):
    """(split value, K-term value, split gradients, K-term gradients), trainable variables."""
    t_outs = d.teacher_outputs(x)
    t_feats = [[tf.stop_gradient(f) for f in out[1:]] for out in t_outs]
    variables = d.trainable_variables
    with tf.GradientTape(persistent=True) as tape:
        s_feats = d.student_outputs(x, training=False)[1:]
        split = feature_terms.feature_term(d, t_feats, s_feats)
        k_terms = sum(feature_terms.per_teacher_term(d, k, t, s_feats)
                      for k, t in enumerate(t_feats)) / len(t_feats)
    return (float(split), float(k_terms), tape.gradient(split, variables),
            tape.gradient(k_terms, variables))


CASES = {
    "gram, teacher adapters (commute)": dict(always_adapt=True),
    "gram sum, max pool, teacher adapters": dict(always_adapt=True, gram_reduction="sum",
                                                 pool="max", gram_weight=0.2),
    "fsp sseung0703": dict(feature_loss="fsp", cross_depth=1, fsp_mode="sseung0703"),
    "fsp paper, teacher adapters": dict(feature_loss="fsp", cross_depth=1, fsp_mode="paper",
                                        always_adapt=True),
    "fsp torchdistill (K terms)": dict(feature_loss="fsp", cross_depth=1, fsp_mode="torchdistill"),
    "gram, student adapters (K terms)": dict(always_adapt=True, adapter_side="student"),
}


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("case", sorted(CASES))
def test_feature_term_equals_the_k_term_form(k, case):
    d = _distiller(k, **CASES[case])
    x = np.random.default_rng(k).normal(size=(2, 8, 8, 3)).astype("float32")
    split, k_terms, g_split, g_terms = _both_forms(d, x)
    assert split == pytest.approx(k_terms, rel=1e-5)
    n_student = len(d.student.trainable_variables)
    reached = 0
    for i, (a, b) in enumerate(zip(g_split, g_terms)):
        if a is None or b is None:   # a variable neither form reaches (e.g. the logits' bias)
            assert a is None and b is None
            continue
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-4,
                                   atol=1e-6 * float(np.max(np.abs(b)) + 1e-30))
        reached += i >= n_student and bool(np.any(np.asarray(b)))
    # Every adapter learns through the split form, as through the K-term form.
    assert reached == len(d.adapters)


def np_gram(f1, f2):
    """Average pooling of the larger map by whole blocks (the ratios here are integers)."""
    oh, ow = min(f1.shape[1], f2.shape[1]), min(f1.shape[2], f2.shape[2])

    def down(f):
        b, h, w, c = f.shape
        return f.reshape(b, oh, h // oh, ow, w // ow, c).mean(axis=(2, 4))

    return np.einsum("bhwi,bhwj->bij", down(f1), down(f2)) / (oh * ow)


def test_default_method_feature_value_against_numpy():
    """K = 3, cross-three pairs, mean reduction, teacher-side adapters applied to the maps."""
    d = _distiller(3, always_adapt=True)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    t_outs = [[np.asarray(o) for o in out[1:]] for out in d.teacher_outputs(x)]
    s_feats = [np.asarray(o) for o in d.student_outputs(x, training=False)[1:]]
    per_teacher = []
    for k, maps in enumerate(t_outs):
        kernels = [np.asarray(d.adapters[j].kernel)[0, 0] for j in d._adapter_index[k]]
        adapted = [np.einsum("bhwc,cd->bhwd", f, w) for f, w in zip(maps, kernels)]
        per_teacher.append(sum(np.mean((np_gram(adapted[a], adapted[b])
                                        - np_gram(s_feats[a], s_feats[b])) ** 2, axis=(1, 2))
                               for a, b in d.pairs))
    want = float(np.mean(per_teacher))
    got = float(feature_terms.feature_term(d, [[tf.constant(f) for f in m] for m in t_outs],
                                           [tf.constant(f) for f in s_feats]))
    assert len(d.pairs) == 6
    assert got == pytest.approx(want, rel=1e-5)


def test_teacher_grams_by_commute_equal_the_grams_of_the_adapted_maps():
    d = _distiller(2, always_adapt=True)
    x = np.random.default_rng(1).normal(size=(2, 8, 8, 3)).astype("float32")
    t_feats = d.teacher_outputs(x)[1][1:]
    via_commute = feature_terms.teacher_grams(d, 1, t_feats, "avg")
    adapted, _ = feature_terms.adapt(d, 1, t_feats, t_feats)
    direct = [np.asarray(g) for g in losses.pair_grams(adapted, d.pairs, "avg")]
    for a, b in zip(via_commute, direct):
        np.testing.assert_allclose(np.asarray(a), b, rtol=1e-4, atol=1e-5 * np.max(np.abs(b)))


@pytest.mark.parametrize("layer, linear", [
    (keras.layers.Conv2D(4, 1, use_bias=False), True),
    (keras.layers.Conv2D(4, 1, use_bias=True), False),
    (keras.layers.Conv2D(4, 1, use_bias=False, activation="relu"), False),
    (keras.layers.Conv2D(4, 3, use_bias=False), False),
    (keras.layers.Conv2D(4, 1, strides=2, use_bias=False), False),
    (keras.layers.Dense(4, use_bias=False), False),
])
def test_linear_kernel_only_for_bias_free_1x1_convolutions(layer, linear):
    layer.build((None, 4, 4, 3))
    kernel = linear_kernel(layer)
    assert (kernel is not None) == linear
    if linear:
        np.testing.assert_array_equal(np.asarray(kernel), np.asarray(layer.kernel)[0, 0])


def test_adapter_gradients_against_numpy():
    """d feature / d W of teacher-side adapters, G_k = W_aᵀ·R_k·W_b (R_k the raw Gram), by hand.

    feature = (1/K) Σ_k mean_b Σ_p mean_ij (G_k − G_S)², so dG = 2(G_k − G_S)/(K·B·m·n),
    dW_a = Σ_b R_k·W_b·dGᵀ and dW_b = Σ_b R_kᵀ·W_a·dG.
    """
    k_teachers = 3
    d = _distiller(k_teachers, always_adapt=True)
    x = np.random.default_rng(5).normal(size=(2, 8, 8, 3)).astype("float32")
    t_outs = [[np.asarray(o) for o in out[1:]] for out in d.teacher_outputs(x)]
    s_feats = [np.asarray(o) for o in d.student_outputs(x, training=False)[1:]]
    want = {}
    for k, maps in enumerate(t_outs):
        idx = d._adapter_index[k]
        kernels = [np.asarray(d.adapters[j].kernel, np.float64)[0, 0] for j in idx]
        for a, b in d.pairs:
            raw = np_gram(maps[a], maps[b])
            g_k = np.einsum("ci,bcd,dj->bij", kernels[a], raw, kernels[b])
            g_s = np_gram(s_feats[a], s_feats[b])
            m, n = g_k.shape[1:]
            dg = 2 * (g_k - g_s) / (k_teachers * len(x) * m * n)
            want[idx[a]] = want.get(idx[a], 0) + np.einsum("bcd,dj,bij->ci", raw, kernels[b], dg)
            want[idx[b]] = want.get(idx[b], 0) + np.einsum("bcd,ci,bij->dj", raw, kernels[a], dg)
    kernels = [a.kernel for a in d.adapters]
    with tf.GradientTape() as tape:
        got = feature_terms.feature_term(d, [[tf.constant(f) for f in m] for m in t_outs],
                                         [tf.constant(f) for f in s_feats])
    grads = tape.gradient(got, kernels)
    assert sorted(want) == list(range(len(d.adapters)))
    for j, g in enumerate(grads):
        np.testing.assert_allclose(np.asarray(g)[0, 0], want[j], rtol=1e-3,
                                   atol=1e-5 * np.max(np.abs(want[j])))
