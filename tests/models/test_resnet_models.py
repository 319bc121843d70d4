"""ResNet-32/8 (CIFAR, 16/32/64) and ResNet-50/18/10 (CIFAR stem, 64..512)."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import keras

from kdkeras import models
from kdkeras.models.resnet import ZeroPadShortcut
from kdkeras.utils import cost
from model_checks import (assert_forward_pass_gives_logits,
                          assert_save_load_round_trip_predicts_identically,
                          assert_taps_params_and_macs)

REPO_ROOT = Path(__file__).resolve().parents[2]

CIFAR_TAPS = {"tap_stem": (32, 32, 16), "tap_stage1": (32, 32, 16), "tap_stage2": (16, 16, 32), "tap_stage3": (8, 8, 64)}
BASIC_TAPS = {
    "tap_stem": (32, 32, 64),
    "tap_stage1": (32, 32, 64),
    "tap_stage2": (16, 16, 128),
    "tap_stage3": (8, 8, 256),
    "tap_stage4": (4, 4, 512),
}
BOTTLENECK_TAPS = {
    "tap_stem": (32, 32, 64),
    "tap_stage1": (32, 32, 256),
    "tap_stage2": (16, 16, 512),
    "tap_stage3": (8, 8, 1024),
    "tap_stage4": (4, 4, 2048),
}

# Hand check of resnet8 (option-A shortcuts have no weights; BN = 4 weights a channel):
#   stem   3*3*3*16 + 4*16                        =    496
#   stage1 2 * (3*3*16*16 + 4*16)                 =  4,736
#   stage2 3*3*16*32 + 3*3*32*32 + 2 * 4*32       = 14,080
#   stage3 3*3*32*64 + 3*3*64*64 + 2 * 4*64       = 55,808
#   logits 64*100 + 100                           =  6,500
#                                           total = 81,620
# Projection shortcuts add (16*32 + 4*32) + (32*64 + 4*64) = 2,944 -> 84,564.
EXPECTED = {
    # name: (taps, params, MACs)
    "resnet32": (CIFAR_TAPS, 472_276, 68_868_352),
    "resnet8": (CIFAR_TAPS, 81_620, 12_245_248),
    "resnet50": (BOTTLENECK_TAPS, 23_758_372, 1_298_014_208),
    "resnet18": (BASIC_TAPS, 11_229_732, 555_468_800),
    "resnet10": (BASIC_TAPS, 4_955_172, 253_478_912),
}
PROJECTION_PARAMS = {"resnet32": 475_220, "resnet8": 84_564}


@pytest.fixture(scope="module")
def built():
    """Builds each model once, on first use (resnet50 is only built where asked for)."""
    cache = {}

    def get(name):
        if name not in cache:
            keras.utils.set_random_seed(0)
            cache[name] = models.get(name)
        return cache[name]

    return get


@pytest.mark.parametrize("name", list(EXPECTED))
def test_taps_params_and_macs_are_pinned(built, name):
    taps, params, macs = EXPECTED[name]
    assert_taps_params_and_macs(built(name), name, taps, params, macs)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_forward_pass_gives_logits(built, name):
    assert_forward_pass_gives_logits(built(name), num_classes=100)


@pytest.mark.parametrize("name", list(PROJECTION_PARAMS))
def test_projection_shortcuts(name):
    model = models.get(name, shortcut="projection")
    assert cost.count_params(model) == PROJECTION_PARAMS[name]
    assert not any(isinstance(l, ZeroPadShortcut) for l in model.layers)


def test_width_multiplier_gives_the_wide_variant_with_the_papers_percentages():
    # Stem 64, stages 64/128/256 with option A: -83.68% params / -82.62% MACs,
    # the paper's -83.65% / -82.6%.
    teacher = models.get("resnet32", width_multiplier=4)
    student = models.get("resnet8", width_multiplier=4)
    assert (cost.count_params(teacher), cost.count_params(student)) == (7_418_404, 1_210_916)
    assert (cost.count_macs(teacher), cost.count_macs(student)) == (1_096_508_416, 190_538_752)
    assert [tuple(t.shape[1:]) for t in models.feature_taps(student).values()] == [
        (32, 32, 64), (32, 32, 64), (16, 16, 128), (8, 8, 256)
    ]
    with pytest.raises(ValueError, match="Received: width_multiplier=0"):
        models.get("resnet8", width_multiplier=0)


def test_depths_are_what_the_names_say():
    # Weight layers on the main path: convs minus 1x1 projections, plus the FC.
    for name, depth in (("resnet32", 32), ("resnet8", 8), ("resnet18", 18), ("resnet10", 10)):
        layers = models.get(name).layers
        convs = [l for l in layers if isinstance(l, keras.layers.Conv2D) and "_0_conv" not in l.name]
        assert len(convs) + 1 == depth, name


# resnet50 is left out: 95 MB to write, and its layers are covered by resnet18/10.
@pytest.mark.parametrize("name", ["resnet32", "resnet8", "resnet18", "resnet10"])
def test_save_load_round_trip_predicts_identically(built, name, tmp_path):
    assert_save_load_round_trip_predicts_identically(built(name), tmp_path)


def test_saved_file_loads_in_a_fresh_process(built, tmp_path):
    # ZeroPadShortcut is a custom layer: importing kdkeras.models must register it.
    model = built("resnet8")
    path = tmp_path / "resnet8.keras"
    model.save(path)
    x = np.random.default_rng(2).normal(size=(2, 32, 32, 3)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", keras.ops.convert_to_numpy(model(x, training=False)))
    script = textwrap.dedent(
        f"""
        import numpy as np, keras
        import kdkeras.models
        m = keras.saving.load_model({str(path)!r})
        y = keras.ops.convert_to_numpy(m(np.load({str(tmp_path / 'x.npy')!r}), training=False))
        np.testing.assert_allclose(y, np.load({str(tmp_path / 'y.npy')!r}), rtol=0, atol=1e-6)
        print(kdkeras.models.tap_names(m))
        """
    )
    pythonpath = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PYTHONPATH=pythonpath, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "tap_stage3" in out.stdout


def test_zero_pad_shortcut_subsamples_and_pads_channels():
    x = np.arange(1 * 4 * 4 * 2, dtype="float32").reshape(1, 4, 4, 2)
    y = keras.ops.convert_to_numpy(ZeroPadShortcut(6, strides=2)(x))
    assert y.shape == (1, 2, 2, 6)
    np.testing.assert_array_equal(y[..., 2:4], x[:, ::2, ::2, :])
    np.testing.assert_array_equal(y[..., :2], 0)
    np.testing.assert_array_equal(y[..., 4:], 0)
    # Odd sizes round up, like a stride-2 'same' conv: 5 -> 3.
    assert ZeroPadShortcut(4, 2).compute_output_shape((None, 5, 5, 2)) == (None, 3, 3, 4)


def test_zero_pad_shortcut_config_and_errors():
    layer = ZeroPadShortcut(32, strides=2, name="pad")
    clone = ZeroPadShortcut.from_config(layer.get_config())
    assert (clone.filters, clone.strides, clone.name) == (32, 2, "pad")
    with pytest.raises(ValueError, match="cannot shrink channels"):
        ZeroPadShortcut(4, 1).compute_output_shape((None, 8, 8, 8))


def test_bad_shortcut_is_refused():
    with pytest.raises(ValueError, match="Received: shortcut='option_c'"):
        models.get("resnet8", shortcut="option_c")


def test_small_inputs_and_few_classes(built):
    model = models.get("resnet8", num_classes=5, input_shape=(8, 8, 3))
    assert tuple(model(np.zeros((2, 8, 8, 3), "float32")).shape) == (2, 5)
    shapes = [tuple(t.shape[1:]) for t in models.feature_taps(model).values()]
    assert shapes == [(8, 8, 16), (8, 8, 16), (4, 4, 32), (2, 2, 64)]
