"""Teacher outputs computed ahead of the step (TFLite teachers in the pipeline), bf16 teachers."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kdkeras import models
from kdkeras.distill import Distiller, method_config
from kdkeras.distill.teacher_outputs import TFLiteTeacher, attach_teacher_outputs
from kdkeras.distill.teacher_precision import precision_report, reduced_precision_teacher

SHAPE = dict(num_classes=3, input_shape=(8, 8, 3))


@pytest.fixture(scope="module")
def setup():
    keras.utils.set_random_seed(0)
    teacher = models.get("resnet8", **SHAPE)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 8, 8, 3)).astype("float32")
    y = (np.arange(8) % 3).astype("int32")
    return teacher, x, y, TFLiteTeacher(teacher, taps=True, quantization=None)


def _distiller(teacher, student_weights=None):
    keras.utils.set_random_seed(1)
    student = models.get("resnet8", **SHAPE)
    if student_weights is not None:
        student.set_weights(student_weights)
    d = Distiller(student, [teacher], method_config("ours"))
    d.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    return d


def test_float_tflite_teacher_returns_the_keras_outputs_in_order(setup):
    teacher, x, _, fast = setup
    view = models.tapped_model(teacher)
    for got, want in zip(fast(x), view(x, training=False)):
        np.testing.assert_allclose(got, np.asarray(want), atol=1e-4)
    assert fast.output_shapes == [tuple(o.shape[1:]) for o in view.outputs]


def test_step_with_precomputed_outputs_equals_the_step_running_teachers(setup):
    teacher, x, y, fast = setup
    ref = _distiller(teacher)
    start = ref.student.get_weights()
    logs_ref = ref.train_on_batch(x, y, return_dict=True)
    d = _distiller(teacher, start)
    ds = attach_teacher_outputs(tf.data.Dataset.from_tensor_slices((x, y)).batch(8), [fast])
    (batch_x, batch_y), = ds.take(1).as_numpy_iterator()
    assert set(batch_x) == {"image", "teacher_outputs"} and len(batch_x["teacher_outputs"]) == 1
    history = d.fit(ds, epochs=1, verbose=0)
    for name in ("ce", "kl", "feature", "beta"):
        assert history.history[name][0] == pytest.approx(float(logs_ref[name]), rel=1e-3), name
    for a, b in zip(ref.student.get_weights(), d.student.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_outputs_without_the_taps_the_method_reads_are_refused(setup):
    teacher, x, y, _ = setup
    logits_only = TFLiteTeacher(teacher, taps=False, quantization="dynamic_int8")
    ds = attach_teacher_outputs(tf.data.Dataset.from_tensor_slices((x, y)).batch(8), [logits_only])
    with pytest.raises(ValueError, match="teacher_outputs do not match"):
        _distiller(teacher).fit(ds, epochs=1, verbose=0)


def test_int8_needs_calibration_images(setup):
    with pytest.raises(ValueError, match="representative"):
        TFLiteTeacher(setup[0], quantization="int8")


def test_bfloat16_teacher_keeps_taps_and_top1(setup):
    teacher, x, _, _ = setup
    half = reduced_precision_teacher(teacher)
    assert [layer.name for layer in half.layers] == [layer.name for layer in teacher.layers]
    assert keras.backend.standardize_dtype(half(x).dtype) == "bfloat16" and not half.trainable
    report = precision_report(teacher, half, x)
    assert report["top1_agreement"] >= 0.75 and report["max_prob_diff"] < 0.05
    assert reduced_precision_teacher(teacher, "float32") is teacher
