"""One Distiller step against a hand-worked update, and what a step may and may not touch."""

import math

import keras
import numpy as np
import pytest
from keras import layers

from kdkeras.distill import Distiller, method_config

B, D, C = 4, 3, 5


def _linear(name, weights):
    inp = keras.Input((D,))
    out = layers.Dense(C, use_bias=False, name="logits")(inp)
    model = keras.Model(inp, out, name=name)
    model.get_layer("logits").set_weights([weights])
    return model


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(B, D)).astype("float32")
    y = np.array([0, 1, 2, 3], dtype="int32")
    w_student = rng.normal(scale=0.5, size=(D, C)).astype("float32")
    w_teacher = rng.normal(scale=0.5, size=(D, C)).astype("float32")
    return x, y, w_student, w_teacher


@pytest.mark.parametrize("kd_smaller, epoch, weight_decay",
                         [(True, 0.0, 0.0), (True, 3.0, 0.01), (False, 1.0, 0.0)])
def test_step_equals_the_hand_computed_update(kd_smaller, epoch, weight_decay):
    x, y, w_s, w_t = _data()
    if kd_smaller:   # a teacher close to the student: ‖∇KD‖ < ‖∇CE‖, β applies
        w_t = w_s + 0.1 * w_t
    else:            # a confident student on its labels, a teacher that disagrees
        w_s = 4 * w_s
        y = np.argmax(x @ w_s, axis=1).astype("int32")
        w_t = -w_s
    lr = 0.1
    # By hand: z = xW, ∇_W CE = xᵀ(p_S − onehot)/B, ∇_W KL(p_T‖p_S) = xᵀ(p_S − p_T)/B.
    p_s, p_t = _softmax(x @ w_s), _softmax(x @ w_t)
    g_ce = x.T @ (p_s - np.eye(C)[y]) / B
    g_kd = x.T @ (p_s - p_t) / B
    n_ce, n_kd = np.linalg.norm(g_ce), np.linalg.norm(g_kd)
    beta = 1 / (1 + math.exp(-(n_ce / n_kd) + epoch))
    scale = beta if n_kd < n_ce else 1.0
    expected = w_s - lr * (g_ce + weight_decay * w_s + scale * g_kd)

    student, teacher = _linear("student", w_s), _linear("teacher", w_t)
    config = method_config("ours", feature_loss=None, use_kl=True, beta_mode="paper")
    d = Distiller(student, [teacher], config, weight_decay=weight_decay)
    d.compile(optimizer=keras.optimizers.SGD(learning_rate=lr))
    d.epoch.assign(epoch)
    logs = d.train_step((x, y))

    np.testing.assert_allclose(student.get_layer("logits").get_weights()[0], expected,
                               rtol=1e-5, atol=1e-6)
    assert float(logs["ce_grad_norm"]) == pytest.approx(n_ce, rel=1e-5)
    assert float(logs["kd_grad_norm"]) == pytest.approx(n_kd, rel=1e-5)
    assert float(logs["beta"]) == pytest.approx(beta, rel=1e-5)
    assert float(logs["kd_scale"]) == pytest.approx(scale, rel=1e-5)
    # The branch each case exercises (both must be covered).
    assert (n_kd < n_ce) == kd_smaller


def test_teachers_stay_bit_identical_while_student_and_adapters_move():
    from kdkeras import models

    student = models.get("resnet8", num_classes=10)
    teachers = [models.get("resnet8", num_classes=10) for _ in range(2)]
    config = method_config("ours", always_adapt=True)
    # No weight decay: the adapters must move by the distillation gradient alone.
    d = Distiller(student, teachers, config, weight_decay=0.0)
    d.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1))
    before_t = [[w.copy() for w in t.get_weights()] for t in teachers]
    before_s = [w.copy() for w in student.get_weights()]
    before_a = [a.get_weights()[0].copy() for a in d.adapters]
    assert len(d.adapters) == 2 * len(d.student_tap_names)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 32, 32, 3)).astype("float32")
    y = np.array([0, 1, 2, 3], dtype="int32")
    logs = d.train_step((x, y))
    assert all(np.isfinite(float(v)) for v in logs.values())
    for t, ws in zip(teachers, before_t):
        for a, b in zip(t.get_weights(), ws):
            np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(student.get_weights(), before_s))
    assert all(not np.array_equal(a.get_weights()[0], b) for a, b in zip(d.adapters, before_a))


def test_saved_student_predicts_like_before_and_holds_no_teacher(tmp_path):
    from kdkeras import models

    student = models.get("resnet8", num_classes=10)
    d = Distiller(student, [models.get("resnet32", num_classes=10)], method_config("ours"))
    d.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05))
    x = np.random.default_rng(2).normal(size=(4, 32, 32, 3)).astype("float32")
    d.train_step((x, np.arange(4, dtype="int32")))
    path = tmp_path / "student.keras"
    d.student.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), student.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)
    assert loaded.count_params() == student.count_params()
    assert not any("adapter" in l.name for l in loaded.layers)


def test_mismatched_classes_is_a_clear_error():
    student = _linear("student", np.zeros((D, C), "float32"))
    inp = keras.Input((D,))
    teacher = keras.Model(inp, layers.Dense(C + 1)(inp), name="teacher")
    with pytest.raises(ValueError, match="predicts 6 classes but the student .* predicts 5"):
        Distiller(student, [teacher], method_config("hinton"))


def test_mismatched_tap_counts_is_a_clear_error():
    from kdkeras import models

    student = models.get("resnet8", num_classes=10)
    teacher = models.get("resnet32", num_classes=10)
    with pytest.raises(ValueError, match="same number of taps"):
        Distiller(student, [teacher], method_config("ours"),
                  teacher_taps=models.tap_names(teacher)[:2])


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(ValueError, match="Unknown method 'fitnet'. Valid methods: student, hinton"):
        method_config("fitnet")


def test_kd_method_without_teachers_is_a_clear_error():
    with pytest.raises(ValueError, match="distils from teachers, but none were given"):
        Distiller(_linear("s", np.zeros((D, C), "float32")), [], method_config("hinton"))
