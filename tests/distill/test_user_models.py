"""Users bring their own networks: distil between two keras.applications models,
taps named by layer, adapters where the channel counts differ."""

import keras
import numpy as np

from kdkeras.distill import Distiller, method_config

TEACHER_TAPS = ["block_1_expand_relu", "block_3_expand_relu", "block_6_expand_relu"]
STUDENT_TAPS = ["conv_pw_1_relu", "conv_pw_3_relu", "conv_pw_5_relu"]


def test_distil_mobilenetv2_into_mobilenet_with_named_taps(tmp_path):
    teacher = keras.applications.MobileNetV2(input_shape=(32, 32, 3), weights=None, classes=10,
                                             alpha=0.35, classifier_activation=None)
    student = keras.applications.MobileNet(input_shape=(32, 32, 3), weights=None, classes=10,
                                           alpha=0.25, classifier_activation=None)
    d = Distiller(student, [teacher], method_config("ours", cross_depth=2),
                  student_taps=STUDENT_TAPS, teacher_taps=TEACHER_TAPS)
    # Teacher taps have 48/48/96 channels, the student's 16/32/64: three adapters,
    # each a bias-free 1×1 conv from the teacher's width to the student's.
    assert [tuple(a.kernel.shape) for a in d.adapters] == [(1, 1, 48, 16), (1, 1, 48, 32),
                                                          (1, 1, 96, 64)]
    assert d.pairs == [(0, 1), (1, 2), (0, 2)]
    d.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, size=16).astype("int32")
    teacher_before = [w.copy() for w in teacher.get_weights()]
    history = d.fit(x, y, batch_size=8, epochs=1, verbose=0).history
    assert np.isfinite(history["feature"][0]) and history["feature"][0] > 0
    assert np.isfinite(history["kl"][0]) and 0 < history["beta"][0] <= 1
    for a, b in zip(teacher.get_weights(), teacher_before):
        np.testing.assert_array_equal(a, b)
    path = tmp_path / "student.keras"
    d.student.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), student.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)
