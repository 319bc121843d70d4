"""VGG-11 / VGG-6: pinned taps, parameter and MAC counts, forward pass, save/load."""

import pytest

import keras

from kdkeras import models
from kdkeras.utils import cost
from model_checks import (assert_forward_pass_gives_logits,
                          assert_save_load_round_trip_predicts_identically,
                          assert_taps_params_and_macs)

TAPS = {
    "tap_stage1": (16, 16, 64),
    "tap_stage2": (8, 8, 128),
    "tap_stage3": (4, 4, 256),
    "tap_stage4": (2, 2, 512),
}

# Hand check of vgg6 (batch_norm=True, convs without bias, BN = 4 weights a channel):
#   conv 3*3*3*64 + 4*64          =     1,984
#   conv 3*3*64*128 + 4*128       =    74,240
#   conv 3*3*128*256 + 4*256      =   295,936
#   conv 3*3*256*512 + 4*512      = 1,181,696
#   fc1  2*2*512*1024 + 1024      = 2,098,176
#   logits 1024*100 + 100         =   102,500
#                           total = 3,754,532
# Without BN each conv has C biases instead of 4C BN weights: 3*(64+128+256+512) = 2,880 fewer.
EXPECTED = {
    # name: (params with BN, params without BN, MACs)
    "vgg11": (7_941_412, 7_935_652, 212_635_648),
    "vgg6": (3_754_532, 3_751_652, 60_592_128),
}


@pytest.fixture(scope="module")
def built():
    keras.utils.set_random_seed(0)
    return {name: models.get(name) for name in EXPECTED}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_taps_params_and_macs_are_pinned(built, name):
    params, _, macs = EXPECTED[name]
    assert_taps_params_and_macs(built[name], name, TAPS, params, macs)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_without_batch_norm_is_sskds_exact_net(name):
    model = models.get(name, batch_norm=False)
    assert cost.count_params(model) == EXPECTED[name][1]
    assert not any(isinstance(l, keras.layers.BatchNormalization) for l in model.layers)


def test_layer_counts_match_the_names():
    # 8 convs + 3 FC = 11 weight layers; 4 convs + 2 FC = 6.
    for name, n_conv, n_fc in (("vgg11", 8, 3), ("vgg6", 4, 2)):
        layers = models.get(name).layers
        assert sum(isinstance(l, keras.layers.Conv2D) for l in layers) == n_conv
        assert sum(isinstance(l, keras.layers.Dense) for l in layers) == n_fc


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_forward_pass_gives_logits(built, name):
    assert_forward_pass_gives_logits(built[name], num_classes=100)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_save_load_round_trip_predicts_identically(built, name, tmp_path):
    assert_save_load_round_trip_predicts_identically(built[name], tmp_path)


def test_too_small_input_is_refused():
    with pytest.raises(ValueError, match=r"at least 16x16.*Received: input_shape=\(8, 8, 3\)"):
        models.get("vgg6", input_shape=(8, 8, 3))


def test_bad_dropout_is_refused():
    with pytest.raises(ValueError, match="Received: dropout=1.5"):
        models.get("vgg6", dropout=1.5)
