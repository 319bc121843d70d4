"""count_params / count_macs / count_flops / measure_latency / cost_report."""

import numpy as np
import pytest

import keras

from kdkeras import models
from kdkeras.utils import cost


def _tiny_conv_dense():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.DepthwiseConv2D(3, strides=2, padding="same")(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(5)(x))


def test_macs_of_a_tiny_conv_dense_model_match_hand_arithmetic():
    # conv       8*8 positions * 4 out * 3*3 kernel * 3 in = 6,912
    # depthwise  4*4 positions * 4 channels * 3*3         =   576
    # dense      (4*4*4 = 64) in * 5 out                  =   320
    # BN and flatten cost nothing                   total = 7,808
    model = _tiny_conv_dense()
    assert cost.count_macs(model) == 7_808
    assert cost.count_flops(model) == 2 * 7_808


def test_params_include_batch_norm_statistics():
    # conv 3*3*3*4 + 4 = 112; BN 4*4 = 16 (8 of them non-trainable);
    # depthwise 3*3*4 + 4 = 40; dense 64*5 + 5 = 325.
    assert cost.count_params(_tiny_conv_dense()) == 112 + 16 + 40 + 325


@pytest.mark.parametrize(
    "layer, input_shape, macs",
    [
        # groups=2: each output sees half the inputs: 4*4 * 8 * 1 * 4/2
        (keras.layers.Conv2D(8, 1, groups=2), (4, 4, 4), 256),
        # depthwise 8*8 * (3*2) * 9 + pointwise 8*8 * 6 * 6
        (keras.layers.SeparableConv2D(6, 3, padding="same", depth_multiplier=2), (8, 8, 3), 3_456 + 2_304),
        # every input position scatters a 3x3 x 2 kernel: 4*4 * 4 * 9 * 2
        (keras.layers.Conv2DTranspose(2, 3, strides=2, padding="same"), (4, 4, 4), 1_152),
        # dense on a sequence: 5 positions * 7 in * 3 out
        (keras.layers.Dense(3), (5, 7), 105),
        # 'valid' conv1d: 8 positions * 4 out * 3 * 2 in
        (keras.layers.Conv1D(4, 3), (10, 2), 192),
        # channels_first: 6*6 positions * 2 out * 3*3 * 3 in
        (keras.layers.Conv2D(2, 3, data_format="channels_first"), (3, 8, 8), 1_944),
        # not counted
        (keras.layers.MaxPooling2D(2), (8, 8, 3), 0),
    ],
)
def test_macs_per_layer_type(layer, input_shape, macs):
    inputs = keras.Input(input_shape)
    assert cost.count_macs(keras.Model(inputs, layer(inputs))) == macs


def test_nested_models_count_once_per_call():
    inner = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, padding="same")])
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Concatenate()([inner(inputs), inner(inputs)])
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(x)))
    # 2 * 6,912 + (8*8*8 = 512) * 2
    assert cost.count_macs(model) == 2 * 6_912 + 1_024
    assert cost.count_macs(inner) == 6_912


def test_known_keras_application_macs():
    # MobileNetV2 1.0 at 224x224 is "300M multiply-adds" (Sandler et al., 2018, Table 3).
    model = keras.applications.MobileNetV2(weights=None)
    assert 299e6 < cost.count_macs(model) < 302e6


def test_dynamic_shapes_and_subclassed_models_are_refused():
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs))
    with pytest.raises(ValueError, match="static shapes"):
        cost.count_macs(model)

    class Sub(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="functional"):
        cost.count_macs(Sub())


def test_cost_report_of_resnet32_to_resnet8():
    report = cost.cost_report(models.get("resnet32"), models.get("resnet8"))
    assert report["teacher"] == "resnet32" and report["student"] == "resnet8"
    assert (report["teacher_params"], report["student_params"]) == (472_276, 81_620)
    assert (report["teacher_macs"], report["student_macs"]) == (68_868_352, 12_245_248)
    assert report["teacher_flops"] == 2 * 68_868_352
    assert report["compression_ratio"] == pytest.approx(472_276 / 81_620)
    assert report["computation_ratio"] == pytest.approx(68_868_352 / 12_245_248)
    assert report["params_reduction_pct"] == pytest.approx(100 * (1 - 81_620 / 472_276))
    assert report["macs_reduction_pct"] == pytest.approx(100 * (1 - 12_245_248 / 68_868_352))


def test_measure_latency():
    result = cost.measure_latency(_tiny_conv_dense(), batch_size=2, repeats=3, warmup=1)
    assert set(result) >= {"median_ms", "p90_ms", "device"}
    assert 0 < result["median_ms"] <= result["p90_ms"]
    assert result["device"].startswith(("CPU: ", "GPU: ", "TPU: "))
    assert result["batch_size"] == 2 and result["repeats"] == 3


@pytest.mark.parametrize("kwargs", [{"batch_size": 0}, {"repeats": 0}, {"warmup": -1}, {"repeats": 2.5}])
def test_measure_latency_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="Received"):
        cost.measure_latency(_tiny_conv_dense(), **kwargs)
