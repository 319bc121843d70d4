"""tap_names / feature_taps / tapped_model on kdkeras and keras.applications models."""

import numpy as np
import pytest

import keras

from kdkeras import models


@pytest.fixture(scope="module")
def resnet8():
    keras.utils.set_random_seed(0)
    return models.get("resnet8", num_classes=5, input_shape=(8, 8, 3))


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")


def test_tap_names_in_forward_order(resnet8):
    assert models.tap_names(resnet8) == ["tap_stem", "tap_stage1", "tap_stage2", "tap_stage3"]


def test_feature_taps_is_ordered_as_asked(resnet8):
    taps = models.feature_taps(resnet8, ["tap_stage3", "stage1_block1_1_relu"])
    assert list(taps) == ["tap_stage3", "stage1_block1_1_relu"]
    assert [tuple(t.shape) for t in taps.values()] == [(None, 2, 2, 64), (None, 8, 8, 16)]


def test_tapped_model_returns_logits_then_taps_with_shared_weights(resnet8, x):
    tapped = models.tapped_model(resnet8)
    assert tapped.name == "resnet8_tapped"
    outs = tapped(x, training=False)
    assert isinstance(outs, list) and len(outs) == 5
    assert [tuple(o.shape) for o in outs] == [
        (2, 5), (2, 8, 8, 16), (2, 8, 8, 16), (2, 4, 4, 32), (2, 2, 2, 64)]
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(outs[0]),
        keras.ops.convert_to_numpy(resnet8(x, training=False)),
        rtol=0,
        atol=1e-6,
    )
    # The very same variables, not copies.
    assert len(tapped.weights) == len(resnet8.weights)
    assert all(a is b for a, b in zip(tapped.weights, resnet8.weights))


def test_taps_work_after_save_and_load(resnet8, x, tmp_path):
    path = tmp_path / "resnet8.keras"
    resnet8.save(path)
    loaded = keras.saving.load_model(path)
    assert models.tap_names(loaded) == models.tap_names(resnet8)
    outs = models.tapped_model(loaded)(x, training=False)
    ref = models.tapped_model(resnet8)(x, training=False)
    for a, b in zip(outs, ref):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), rtol=0, atol=1e-6
        )


def test_keras_applications_model_with_named_layers():
    base = keras.applications.MobileNetV2(
        input_shape=(32, 32, 3), weights=None, classes=10, classifier_activation=None
    )
    assert models.tap_names(base) == []
    tapped = models.tapped_model(base, ["block_3_expand_relu", "out_relu"])
    outs = tapped(np.zeros((2, 32, 32, 3), "float32"), training=False)
    assert [tuple(o.shape) for o in outs] == [(2, 10), (2, 8, 8, 144), (2, 1, 1, 1280)]
    assert all(a is b for a, b in zip(tapped.weights, base.weights))


def test_unknown_name_lists_the_available_taps(resnet8):
    with pytest.raises(ValueError, match=r"no layer\(s\) \['tap_stage9'\].*\['tap_stem', 'tap_stage1', 'tap_stage2', 'tap_stage3'\]"):
        models.feature_taps(resnet8, ["tap_stage1", "tap_stage9"])


def test_repeated_names_are_refused(resnet8):
    with pytest.raises(ValueError, match="unique"):
        models.feature_taps(resnet8, ["tap_stage1", "tap_stage1"])


def test_a_model_without_taps_needs_names():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="logits")(inputs), name="tiny")
    with pytest.raises(ValueError, match="has no layers named 'tap_\\*'"):
        models.feature_taps(model)


def test_a_layer_called_twice_cannot_be_tapped():
    inputs = keras.Input((4,))
    shared = keras.layers.Dense(4, name="shared")
    model = keras.Model(inputs, keras.layers.Dense(2)(shared(shared(inputs))))
    with pytest.raises(ValueError, match="called exactly once"):
        models.feature_taps(model, ["shared"])


def test_a_subclassed_model_is_refused():
    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    with pytest.raises(ValueError, match="functional"):
        models.tap_names(Sub())


def test_sequential_models_can_be_tapped():
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, name="tap_hidden"), keras.layers.Dense(2, name="logits")]
    )
    outs = models.tapped_model(model)(np.zeros((2, 4), "float32"))
    assert [tuple(o.shape) for o in outs] == [(2, 2), (2, 3)]
