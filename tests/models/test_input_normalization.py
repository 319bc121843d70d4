"""InputNormalization, `get(..., input_normalization=)` and `load_teacher`: models own their normalisation."""

import json

import keras
import numpy as np
import pytest

from kdkeras import models
from kdkeras.models.normalization import STATISTICS, resolve_statistics

SHAPE = dict(num_classes=3, input_shape=(8, 8, 3))
MEAN, STD = (0.5, 0.4, 0.2), (0.25, 0.5, 0.2)


def _pixels(seed: int, n: int = 2, shape=(8, 8, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape)).astype("uint8")


def _old_pipeline_normalise(x, mean, std) -> np.ndarray:
    """What make_input_pipeline computed before models normalised: float32 constants, x − a, · b."""
    offset = np.asarray(255.0 * np.asarray(mean), np.float32)
    scale = np.asarray(1.0 / (255.0 * np.asarray(std)), np.float32)
    return (np.asarray(x, np.float32) - offset) * scale


def test_layer_values_worked_by_hand():
    # (x/255 − mean)/std for x = 0, 51 (0.2), 255 (1.0):
    #   ch0: (0 − .5)/.25 = −2, (.2 − .5)/.25 = −1.2, (1 − .5)/.25 = 2
    #   ch1: (0 − .4)/.5 = −.8, (.2 − .4)/.5 = −.4, (1 − .4)/.5 = 1.2
    #   ch2: (0 − .2)/.2 = −1,  (.2 − .2)/.2 = 0,   (1 − .2)/.2 = 4
    x = np.array([0.0, 51.0, 255.0], "float32")[None, :, None, None] * np.ones((1, 3, 1, 3), "float32")
    y = keras.ops.convert_to_numpy(models.InputNormalization(MEAN, STD)(x))
    expected = np.array([[-2.0, -0.8, -1.0], [-1.2, -0.4, 0.0], [2.0, 1.2, 4.0]], "float32")
    np.testing.assert_allclose(y[0, :, 0, :], expected, rtol=1e-6, atol=1e-6)
    assert y.dtype == np.float32


def test_uint8_and_float_pixels_give_the_same_values_as_the_old_pipelines():
    layer = models.InputNormalization(*STATISTICS["cifar10"])
    x = _pixels(0)
    expected = _old_pipeline_normalise(x, *STATISTICS["cifar10"])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x)), expected)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x.astype("float32"))), expected)


def test_layer_has_no_weights_and_computes_in_float32_under_bfloat16():
    layer = models.InputNormalization(MEAN, STD, dtype="bfloat16")
    y = layer(_pixels(1).astype("float32"))
    assert layer.weights == [] and layer.count_params() == 0
    assert keras.backend.standardize_dtype(y.dtype) == "float32"
    assert layer.get_config()["mean"] == list(MEAN) and layer.get_config()["std"] == list(STD)


def test_get_begins_every_model_with_the_named_statistics():
    for name, expected in [("resnet8", "cifar100"), ("vgg6", "cifar100"), ("mobilenet9", "imagenet")]:
        model = models.get(name)
        first = model.layers[1]
        assert isinstance(first, models.InputNormalization) and first.name == "input_normalization"
        assert (first.mean, first.std) == STATISTICS[expected]
    model = models.get("resnet8", **SHAPE, input_normalization="cifar10")
    assert models.input_statistics(model) == {"mean": list(STATISTICS["cifar10"][0]),
                                              "std": list(STATISTICS["cifar10"][1])}
    model = models.get("resnet8", **SHAPE, input_normalization=(MEAN, STD))
    assert models.input_statistics(model) == {"mean": list(MEAN), "std": list(STD)}


def test_the_layer_adds_no_parameters_and_keeps_taps():
    bare = models.get("resnet8", **SHAPE, input_normalization=None)
    normalised = models.get("resnet8", **SHAPE)
    assert not any(isinstance(l, models.InputNormalization) for l in bare.layers)
    # ResNet-8 at 3 classes (75,380 at 4 classes in the family test, less 65 logits weights).
    assert bare.count_params() == normalised.count_params() == 75_315
    assert len(bare.trainable_weights) == len(normalised.trainable_weights)
    assert models.tap_names(bare) == models.tap_names(normalised)


def test_model_output_is_the_bare_model_on_normalised_pixels():
    model = models.get("resnet8", **SHAPE, input_normalization=(MEAN, STD))
    bare = models.get("resnet8", **SHAPE, input_normalization=None)
    bare.set_weights(model.get_weights())  # the same variables in the same order
    x = _pixels(2)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model(x, training=False)),
        keras.ops.convert_to_numpy(bare(_old_pipeline_normalise(x, MEAN, STD), training=False)))


@pytest.mark.parametrize("spec, message", [
    ("cifar1000", r"No normalisation statistics named 'cifar1000'; known: .*imagenet"),
    ((MEAN, STD[:2]), r"one value per input channel \(3 channels\)"),
    ((MEAN, (0.2, 0.0, 0.2)), r"std must be positive\. Received: std=\(0\.2, 0\.0, 0\.2\)"),
    ((MEAN, (0.2, float("nan"), 0.2)), r"std must be a sequence of finite numbers"),
    (42, r"input_normalization must be a name of kdkeras.models.STATISTICS"),
    ({"mean": MEAN}, r"needs 'mean' and 'std'"),
])
def test_bad_statistics_are_refused_before_building(spec, message):
    with pytest.raises(ValueError, match=message):
        models.get("resnet8", **SHAPE, input_normalization=spec)


def test_save_load_round_trip_keeps_the_statistics(tmp_path):
    model = models.get("resnet8", **SHAPE, input_normalization=(MEAN, STD))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert models.input_statistics(loaded) == {"mean": list(MEAN), "std": list(STD)}
    x = _pixels(3)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model(x, training=False)),
                                  keras.ops.convert_to_numpy(loaded(x, training=False)))
    assert models.load_teacher(tmp_path / "m.keras").get_config() == loaded.get_config()


def _legacy_teacher(tmp_path, record=True):
    """A model saved before the contract (no layer, takes normalised inputs), with its record."""
    legacy = models.get("resnet8", **SHAPE, input_normalization=None)
    for layer in legacy.layers:  # non-default BN statistics, so a lost layer would show
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(np.linspace(-0.3, 0.3, layer.moving_mean.shape[0]))
    run = tmp_path / "teacher"
    run.mkdir()
    legacy.save(run / "model.keras")
    if record:
        (run / "results.json").write_text(json.dumps(
            {"test_accuracy": 0.5, "input_normalization": {"mean": list(MEAN), "std": list(STD),
                                                           "formula": "(x / 255 - mean) / std"}}))
    return legacy, run


def test_load_teacher_wraps_a_legacy_model_with_its_recorded_statistics(tmp_path):
    legacy, run = _legacy_teacher(tmp_path)
    teacher = models.load_teacher(run)  # the run directory, or its model.keras
    assert teacher.name == legacy.name and teacher.layers[1].name == "input_normalization"
    assert models.tap_names(teacher) == models.tap_names(legacy)
    assert teacher.count_params() == legacy.count_params()
    x = _pixels(4, n=4)
    # Exactly what the legacy model gave on the old pipeline's normalised inputs.
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(teacher(x, training=False)),
        keras.ops.convert_to_numpy(legacy(_old_pipeline_normalise(x, MEAN, STD), training=False)))
    taps = models.tapped_model(teacher)(x, training=False)
    legacy_taps = models.tapped_model(legacy)(_old_pipeline_normalise(x, MEAN, STD), training=False)
    for a, b in zip(taps, legacy_taps):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    # Saved again, it carries the layer and no longer needs the record.
    teacher.save(tmp_path / "wrapped.keras")
    again = models.load_teacher(tmp_path / "wrapped.keras")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(again(x, training=False)),
                                  keras.ops.convert_to_numpy(teacher(x, training=False)))


def test_load_teacher_refuses_a_legacy_model_without_statistics(tmp_path):
    _, run = _legacy_teacher(tmp_path, record=False)
    with pytest.raises(ValueError, match=r"has no InputNormalization layer .* no statistics are "
                                         r"recorded for it in .*results.json"):
        models.load_teacher(run / "model.keras")
    teacher = models.load_teacher(run, input_normalization=(MEAN, STD))
    assert models.input_statistics(teacher) == {"mean": list(MEAN), "std": list(STD)}


def test_load_teacher_refuses_statistics_for_a_model_that_has_its_own(tmp_path):
    models.get("resnet8", **SHAPE).save(tmp_path / "m.keras")
    with pytest.raises(ValueError, match="already normalises its inputs"):
        models.load_teacher(tmp_path / "m.keras", input_normalization="cifar10")
    with pytest.raises(FileNotFoundError, match="No saved model at"):
        models.load_teacher(tmp_path / "nothing.keras")


def test_resolve_statistics_accepts_the_recorded_form():
    assert resolve_statistics({"mean": MEAN, "std": STD, "formula": "..."}) == (MEAN, STD)
    assert resolve_statistics(None) is None
