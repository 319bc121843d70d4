"""MobileNet-16 / MobileNet-9 on 64x64 inputs with 1000 classes."""

import pytest

import keras

from kdkeras import models
from model_checks import (assert_forward_pass_gives_logits,
                          assert_save_load_round_trip_predicts_identically,
                          assert_taps_params_and_macs)

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
    params, macs = EXPECTED[name]
    assert_taps_params_and_macs(built[name], name, TAPS, params, macs)


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
    assert_forward_pass_gives_logits(built[name], num_classes=1000)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_save_load_round_trip_predicts_identically(built, name, tmp_path):
    assert_save_load_round_trip_predicts_identically(built[name], tmp_path)


def test_stride_one_stem_doubles_the_tap_sizes():
    model = models.get("mobilenet9", num_classes=10, input_shape=(32, 32, 3), stem_strides=1)
    shapes = [tuple(t.shape[1:]) for t in models.feature_taps(model).values()]
    assert shapes == list(TAPS.values())
    with pytest.raises(ValueError, match="Received: stem_strides=3"):
        models.get("mobilenet9", stem_strides=3)
