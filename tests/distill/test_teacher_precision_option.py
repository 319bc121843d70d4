"""`teacher_precision` / `teacher_dtype`: reduced-precision teachers from the config, as runs do."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kdkeras import models
from kdkeras.distill import Distiller, method_config

SHAPE = dict(num_classes=3, input_shape=(8, 8, 3))


def _data(n=16):
    rng = np.random.default_rng(0)
    return (rng.normal(size=(n, 8, 8, 3)).astype("float32"), (np.arange(n) % 3).astype("int32"))


def _distiller(**kwargs):
    keras.utils.set_random_seed(0)
    teachers = [models.get("resnet8", **SHAPE) for _ in range(2)]
    student = models.get("resnet8", **SHAPE)
    config = method_config("ours", **kwargs.pop("config", {}))
    d = Distiller(student, teachers, config, **kwargs)
    d.compile(optimizer=keras.optimizers.SGD(0.05))
    return d, teachers


def test_default_keeps_the_float32_teachers_themselves():
    d, teachers = _distiller()
    assert d.config.teacher_precision == "float32" and d.teacher_dtype == "float32"
    assert all(a is b for a, b in zip(d.teachers, teachers))


@pytest.mark.parametrize("kwargs", [dict(config=dict(teacher_precision="bfloat16")),
                                    dict(teacher_dtype="bfloat16")])
def test_bfloat16_teachers_from_config_or_argument(kwargs):
    d, teachers = _distiller(**kwargs)
    x, y = _data(4)
    assert d.teacher_dtype == "bfloat16"
    outputs = d.teacher_outputs(x)
    dtypes = {keras.backend.standardize_dtype(o.dtype) for out in outputs for o in out}
    assert dtypes == {"bfloat16"}
    # The same network: its logits within bfloat16 round-off of the float32 teacher's.
    want = np.asarray(teachers[0](x, training=False))
    got = np.asarray(keras.ops.cast(outputs[0][0], "float32"))
    assert np.max(np.abs(got - want)) <= 0.02 * np.max(np.abs(want)) + 1e-3
    logs = d.train_on_batch(x, y, return_dict=True)
    assert all(np.isfinite(float(v)) for v in logs.values())
    assert all(not w.trainable for t in d.teachers for w in t.weights)


def test_a_teacher_dtype_that_contradicts_the_config_is_refused():
    with pytest.raises(ValueError, match="contradicts the config"):
        _distiller(config=dict(teacher_precision="bfloat16"), teacher_dtype="float16")
    with pytest.raises(ValueError, match="Unknown teacher dtype"):
        _distiller(teacher_dtype="int4")
    with pytest.raises(ValueError, match="teacher_precision"):
        method_config("ours", teacher_precision="fp8")


def test_int8_ahead_fit_takes_teacher_outputs_from_the_pipeline():
    x, y = _data(16)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    ref, _ = _distiller()
    start = ref.student.get_weights()
    ref_hist = ref.fit(ds, epochs=1, verbose=0).history
    d, _ = _distiller(config=dict(teacher_precision="int8_ahead"))
    d.student.set_weights(start)

    def no_keras_teachers(x):
        raise AssertionError("the Keras teachers ran inside the step")

    object.__setattr__(d, "teacher_outputs", no_keras_teachers)
    hist = d.fit(ds, epochs=1, verbose=0).history
    converted = d._int8_teachers
    assert len(converted) == 2 and all(t.quantization == "int8" for t in converted)
    # The int8 teachers change the targets by their round-off only: the losses stay close.
    assert hist["ce"][0] == pytest.approx(ref_hist["ce"][0], rel=1e-3)
    assert hist["kl"][0] == pytest.approx(ref_hist["kl"][0], rel=0.2, abs=1e-3)
    assert hist["feature"][0] == pytest.approx(ref_hist["feature"][0], rel=0.2)
    d.fit(ds, epochs=1, verbose=0)
    assert d._int8_teachers is converted   # converted once


def test_int8_ahead_needs_a_dataset():
    d, _ = _distiller(config=dict(teacher_precision="int8_ahead"))
    x, y = _data(8)
    with pytest.raises(ValueError, match="tf.data.Dataset"):
        d.fit(x, y, epochs=1, verbose=0)
