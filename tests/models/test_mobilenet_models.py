"""MobileNet-16 / MobileNet-9 on 64x64 inputs with 1000 classes."""

import numpy as np
import pytest

import keras

from kdkeras import models
from kdkeras.utils import cost

TAPS = {
    "tap_stem": (32, 32, 32),
    "tap_stage1": (32, 32, 64),
    "tap_stage2": (16, 16, 128),
    "tap_stage3": (8, 8, 256),
    "tap_stage4": (4, 4, 512),
}

# Hand check of mobilenet9 (no conv biases; BN = 4 weights a channel):
#   stem        3*3*3*32 + 4*32                     =     992
#   DS(64,s1)   3*3*32 + 4*32 + 32*64 + 4*64        =   2,720
#   DS(128,s2)  3*3*64 + 4*64 + 64*128 + 4*128      =   9,536
#   DS(256,s2)  3*3*128 + 4*128 + 128*256 + 4*256   =  35,456
#   DS(512,s2)  3*3*256 + 4*256 + 256*512 + 4*512   = 136,448
#   logits      512*1000 + 1000                     = 513,000
#                                             total = 698,152
EXPECTED = {
    # name: (params, MACs)
    "mobilenet16": (1_057_448, 23_437_312),
    "mobilenet9": (698_152, 10_338_304),
}


@pytest.fixture(scope="module")
def built():
    keras.utils.set_random_seed(0)
    return {name: models.get(name) for name in EXPECTED}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_taps_params_and_macs_are_pinned(built, name):
    model = built[name]
    assert model.name == name
    assert models.tap_names(model) == list(TAPS)
    assert {k: tuple(v.shape[1:]) for k, v in models.feature_taps(model).items()} == TAPS
    assert cost.count_params(model) == EXPECTED[name][0]
    assert cost.count_macs(model) == EXPECTED[name][1]


def test_layer_counts():
    # 16 = stem + 7 x (dw + pw) + FC; 9 = stem + 4 x (dw + pw), the FC not counted.
    for name, n_ds in (("mobilenet16", 7), ("mobilenet9", 4)):
        layers = models.get(name).layers
        assert sum(isinstance(l, keras.layers.DepthwiseConv2D) for l in layers) == n_ds
        assert sum(type(l) is keras.layers.Conv2D for l in layers) == 1 + n_ds


def test_student_blocks_are_named_like_the_teachers_first_blocks(built):
    conv_names = lambda m: {l.name for l in m.layers if "conv" in l.name}
    assert conv_names(built["mobilenet9"]) < conv_names(built["mobilenet16"])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_forward_pass_gives_logits(built, name):
    x = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype("float32")
    y = built[name](x, training=False)
    assert tuple(y.shape) == (2, 1000)
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(y)))


def _perturb_batch_norm(model, seed=0):
    """Non-default BN statistics, so that a round trip that lost them would show."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.1, c).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, c).astype("float32"))
            layer.beta.assign(rng.normal(0, 0.1, c).astype("float32"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_save_load_round_trip_predicts_identically(built, name, tmp_path):
    model = built[name]
    _perturb_batch_norm(model)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.name == name
    assert models.tap_names(loaded) == list(TAPS)
    x = np.random.default_rng(1).normal(size=(2, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(x, training=False)),
        keras.ops.convert_to_numpy(model(x, training=False)),
        rtol=0,
        atol=1e-6,
    )


def test_stride_one_stem_doubles_the_tap_sizes():
    model = models.get("mobilenet9", num_classes=10, input_shape=(32, 32, 3), stem_strides=1)
    shapes = [tuple(t.shape[1:]) for t in models.feature_taps(model).values()]
    assert shapes == list(TAPS.values())
    with pytest.raises(ValueError, match="Received: stem_strides=3"):
        models.get("mobilenet9", stem_strides=3)
