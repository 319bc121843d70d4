"""The input contract: raw pixels for a model that does not normalise are refused before step 1.

What the README user met (issue 18): `keras.utils.image_dataset_from_directory`
gives pixels in [0, 255]; a model taking normalised inputs diverged (feature
term 1e12 at step 1, NaN at step 4) and a NaN student was saved. kdkeras
models normalise inside, so the same data trains them; a model without a
normalising layer is refused with one error before any step runs.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kdkeras import models
from kdkeras.data.numpy_data import ArrayBatches
from kdkeras.distill import Distiller, method_config
from kdkeras.distill.input_contract import check_fit_inputs, first_images, normalises_inputs

SHAPE = dict(num_classes=3, input_shape=(8, 8, 3))


def _pixels(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 8, 8, 3)).astype("uint8"), np.arange(n) % 3


class _StepCounter(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.steps = 0

    def on_train_batch_begin(self, batch, logs=None):
        self.steps += 1


def _distiller(student_normalisation="default", teacher_normalisation="default"):
    student = models.get("resnet8", **SHAPE, input_normalization=student_normalisation)
    teacher = models.get("resnet8", **SHAPE, input_normalization=teacher_normalisation)
    distiller = Distiller(student, [teacher], method_config("ours"))
    distiller.compile(optimizer=keras.optimizers.SGD(0.01))
    return distiller


@pytest.mark.parametrize("who", ["student", "teacher"])
def test_pixels_for_a_model_without_normalisation_are_refused_before_the_first_step(who):
    x, y = _pixels()
    ds = tf.data.Dataset.from_tensor_slices((x.astype("float32"), y)).batch(4)
    distiller = _distiller(**{f"{who}_normalisation": None})
    counter = _StepCounter()
    with pytest.raises(ValueError, match=(
            r"look like raw pixels \(dtype float32, largest \|value\| 2\d\d\), but model\(s\) "
            r"\['resnet8'\] have no input normalisation layer.*"
            r"kdkeras\.models\.get\(name, \.\.\., input_normalization=.*load_teacher\(path\)")):
        distiller.fit(ds, epochs=1, verbose=0, callbacks=[counter])
    assert counter.steps == 0


def test_uint8_pixels_train_models_that_normalise():
    x, y = _pixels()
    distiller = _distiller()
    history = distiller.fit(x, y, batch_size=4, epochs=1, verbose=0)  # uint8 arrays as given
    assert all(np.isfinite(v[-1]) for v in history.history.values())
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)            # uint8 tf.data
    history = distiller.fit(ds, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1])


def test_normalised_inputs_for_models_without_the_layer_still_train():
    x, y = _pixels()
    normalised = (x.astype("float32") / 255.0 - 0.5) / 0.25  # within [-2, 2]
    distiller = _distiller(None, None)
    history = distiller.fit(normalised, y, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    # And integer images are pixels whatever their values.
    with pytest.raises(ValueError, match=r"dtype uint8, largest \|value\| 1\)"):
        distiller.fit(np.ones_like(x), y, batch_size=4, epochs=1, verbose=0)


def test_first_images_reads_each_kind_of_fit_input():
    x, y = _pixels(n=6)
    batches = ArrayBatches(x, y, batch_size=3, training=False)
    np.testing.assert_array_equal(first_images(batches), x[:3].astype("float32"))
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(2)
    np.testing.assert_array_equal(first_images(ds), x[:2])
    np.testing.assert_array_equal(first_images(x), x)
    assert first_images(iter([(x, y)])) is None  # a generator is not consumed
    assert first_images(None) is None


def test_keras_own_rescaling_counts_as_normalising():
    inputs = keras.Input((8, 8, 3))
    hidden = keras.layers.Rescaling(1 / 255.0)(inputs)
    user_model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(hidden)))
    assert normalises_inputs(user_model)
    assert normalises_inputs(models.get("resnet8", **SHAPE))
    assert not normalises_inputs(models.get("resnet8", **SHAPE, input_normalization=None))
    check_fit_inputs([user_model], _pixels()[0])  # no error
