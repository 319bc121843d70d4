"""The P3 ensemble options inside the Distiller: K tiny linear teachers, losses worked in NumPy.

The teachers are 1×1 convolutions (two taps) and a dense head, all linear and
bias-free, so a teacher whose taps are another's rotated channel by channel
can be built exactly: tap₁·Q1, tap₂·Q2 with the same logits.
"""

import keras
import numpy as np
import pytest
from keras import layers

from kdkeras.distill import Distiller, ensemble, method_config

B, HW, C, CLASSES = 4, 4, 3, 5
RNG = np.random.default_rng(0)


def _orthogonal(seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(C, C)))
    return q.astype("float32")


def tapped(name, w1, w2, wd):
    inp = keras.Input((HW, HW, 3))
    t1 = layers.Conv2D(C, 1, use_bias=False, name="tap_1")(inp)
    t2 = layers.Conv2D(C, 1, use_bias=False, name="tap_2")(t1)
    out = layers.Dense(CLASSES, use_bias=False, name="logits")(layers.GlobalAveragePooling2D()(t2))
    model = keras.Model(inp, out, name=name)
    for layer, w in (("tap_1", w1), ("tap_2", w2), ("logits", wd)):
        model.get_layer(layer).set_weights([w])
    return model


def random_weights(seed):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(1, 1, 3, C)).astype("float32"),
            rng.normal(size=(1, 1, C, C)).astype("float32"),
            rng.normal(size=(C, CLASSES)).astype("float32"))


def rotated(w, q1, q2):
    """The same function with tap₁ → tap₁·Q1 and tap₂ → tap₂·Q2."""
    w1, w2, wd = w
    return (w1 @ q1, (q1.T @ w2[0, 0] @ q2)[None, None], q2.T @ wd)


def _data(seed=1):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(B, HW, HW, 3)).astype("float32"),
            rng.integers(0, CLASSES, size=B).astype("int32"))


def _terms(d, x, y):
    terms = d.compute_terms(y, d.student_outputs(x, training=False), d.teacher_outputs(x))
    return float(terms["kl"]), float(terms["feature"])


# --- NumPy references --------------------------------------------------------------------
def np_softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def np_outputs(model, x):
    w1, w2, wd = (model.get_layer(n).get_weights()[0] for n in ("tap_1", "tap_2", "logits"))
    t1 = x @ w1[0, 0]
    t2 = t1 @ w2[0, 0]
    return t2.mean(axis=(1, 2)) @ wd, t1, t2


def np_gram_distance(t, s):
    """The `ours` Gram term of one pair (tap₁, tap₂): λ = 1, mean of squared differences."""
    def gram(a, b):
        return np.einsum("bhwi,bhwj->bij", a, b) / (HW * HW)
    return ((gram(*t) - gram(*s)) ** 2).mean(axis=(1, 2))


def np_kl(p_t, p_s):
    return (p_t * (np.log(p_t) - np.log(p_s))).sum(-1)


def np_confidence(t_logits, y):
    ce = np.stack([-np.log(np_softmax(z)[np.arange(B), y]) for z in t_logits], axis=1)
    return (1 - np_softmax(ce)) / (len(t_logits) - 1)


# --- the tests ------------------------------------------------------------------------------
def _three_teachers(config):
    student = tapped("student", *random_weights(10))
    teachers = [tapped(f"t{k}", *random_weights(20 + k)) for k in range(3)]
    return Distiller(student, teachers, config, weight_decay=0.0), student, teachers


@pytest.mark.parametrize("weighting", ["mean", "confidence", "closest"])
@pytest.mark.parametrize("form", ["mean_of_kls", "kl_to_mean"])
def test_k_teachers_with_the_options_give_the_numpy_loss(weighting, form):
    d, student, teachers = _three_teachers(
        method_config("ours", cross_depth=1, teacher_weighting=weighting, ensemble_kl=form))
    x, y = _data()
    s_logits, *s_taps = np_outputs(student, x)
    outs = [np_outputs(t, x) for t in teachers]
    p_s, p_t = np_softmax(s_logits), [np_softmax(o[0]) for o in outs]
    kls = np.stack([np_kl(p, p_s) for p in p_t], axis=1)
    grams = np.stack([np_gram_distance(o[1:], s_taps) for o in outs], axis=1)
    if weighting == "mean":
        w_kl = w_feat = np.full((B, 3), 1 / 3)
    elif weighting == "confidence":
        w_kl = w_feat = np_confidence([o[0] for o in outs], y)
    else:
        w_kl, w_feat = np.eye(3)[kls.argmin(1)], np.eye(3)[grams.argmin(1)]
    if form == "mean_of_kls":
        kl = (w_kl * kls).sum(1).mean()
    else:
        kl = np_kl(sum(w_kl[:, k:k + 1] * p_t[k] for k in range(3)), p_s).mean()
    feature = (w_feat * grams).sum(1).mean()
    got_kl, got_feature = _terms(d, x, y)
    assert got_kl == pytest.approx(kl, rel=1e-4)
    assert got_feature == pytest.approx(feature, rel=1e-4)


def test_aligned_rotated_copies_of_one_teacher_give_its_k1_loss():
    """Teacher 1 = teacher 0 with every tap rotated: unaligned the average Gram is off, aligned
    (rotations fitted on other images) the K=2 feature term is the K=1 one."""
    w = random_weights(30)
    q1, q2 = _orthogonal(1), _orthogonal(2)
    t0, t1 = tapped("t0", *w), tapped("t1", *rotated(w, q1, q2))
    x, y = _data()
    fit_images = _data(seed=2)[0]
    # A random student, and one equal to teacher 0 (its K=1 feature term is 0).
    for student, weights in (("random", random_weights(31)), ("teacher 0", w)):
        s = tapped("student", *weights)
        one = Distiller(s, [t0], method_config("ours", cross_depth=1), weight_decay=0.0)
        plain = Distiller(s, [t0, t1], method_config("ours", cross_depth=1), weight_decay=0.0)
        aligned = Distiller(s, [t0, t1], method_config("ours", cross_depth=1,
                                                       teacher_alignment="procrustes"),
                            weight_decay=0.0)
        with pytest.raises(ValueError, match="not fitted"):
            _terms(aligned, x, y)
        rotations = ensemble.fit_teacher_alignment(aligned, fit_images)
        np.testing.assert_allclose(rotations[1][0], q1.T, atol=1e-4)   # t1's taps back onto t0's
        np.testing.assert_allclose(rotations[1][1], q2.T, atol=1e-4)
        np.testing.assert_allclose(rotations[0][0], np.eye(C))
        kl_one, feature_one = _terms(one, x, y)
        kl_plain, feature_plain = _terms(plain, x, y)
        kl_aligned, feature_aligned = _terms(aligned, x, y)
        assert kl_plain == pytest.approx(kl_one, rel=1e-4, abs=1e-6)  # the same logits
        assert kl_aligned == pytest.approx(kl_one, rel=1e-4, abs=1e-6)
        assert feature_aligned == pytest.approx(feature_one, rel=1e-4, abs=1e-6), student
        assert feature_plain > feature_one + 0.1, student            # the unaligned spread


def test_fit_fits_the_alignment_once_and_a_restored_run_keeps_it(tmp_path):
    w = random_weights(40)
    q1, q2 = _orthogonal(3), _orthogonal(4)
    config = method_config("ours", cross_depth=1, teacher_alignment="procrustes")

    def build():
        return Distiller(tapped("student", *random_weights(41)),
                         [tapped("t0", *w), tapped("t1", *rotated(w, q1, q2))], config,
                         weight_decay=0.0)

    d = build()
    d.compile(optimizer=keras.optimizers.SGD(0.01))
    x = RNG.normal(size=(8, HW, HW, 3)).astype("float32")
    d.fit(x, RNG.integers(0, CLASSES, size=8).astype("int32"), batch_size=4, epochs=1, verbose=0)
    fitted = keras.ops.convert_to_numpy(d.teacher_alignment.rotations[1][1])
    np.testing.assert_allclose(fitted, q2.T, atol=1e-4)
    path = str(tmp_path / "d.weights.h5")
    d.save_weights(path)
    again = build()
    again.load_weights(path)
    # Not refitted on other images: the checkpoint's rotations are kept.
    ensemble.prepare_fit(again, np.zeros((4, HW, HW, 3), "float32"))
    assert again.teacher_alignment.ready
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(again.teacher_alignment.rotations[1][1]), fitted)


def test_default_options_leave_the_distiller_as_it_was():
    d, _, _ = _three_teachers(method_config("ours", cross_depth=1))
    assert d.teacher_alignment is None and not ensemble.uses_variant(d.config)
    assert not any("alignment" in v.path for v in d.variables)


@pytest.mark.parametrize("overrides, match", [
    (dict(teacher_weighting="median"), "teacher_weighting"),
    (dict(ensemble_kl="js"), "ensemble_kl"),
    (dict(teacher_alignment="affine"), "teacher_alignment"),
    (dict(feature_loss="rkd", teacher_weighting="confidence"), "RKD"),
    (dict(feature_loss=None, teacher_alignment="procrustes"), "has none to align"),
])
def test_bad_options_give_one_clear_error_at_construction(overrides, match):
    with pytest.raises(ValueError, match=match):
        _three_teachers(method_config("ours", cross_depth=1, **overrides))
