"""kdkeras.models.get / names: defaults, options and error messages."""

import numpy as np
import pytest

import keras

from kdkeras import models

PAPER_MODELS = [
    "vgg11", "vgg6", "resnet32", "resnet8", "resnet50", "resnet18", "resnet10",
    "mobilenet16", "mobilenet9",
]


def test_names_lists_the_papers_models_teachers_first():
    assert models.names() == PAPER_MODELS


def test_every_pair_in_paper_pairs_is_registered():
    for key, pair in models.PAPER_PAIRS.items():
        assert pair.key == key
        for name in (pair.teacher, pair.student, pair.assistant or pair.student):
            assert name in models.names(), (key, name)
    # The reported figures: ResNet-50 -> ResNet-10's percentages as factors.
    assert round(models.PAPER_PAIRS["resnet50"].params_reduction, 3) == 3.596
    assert models.PAPER_PAIRS["resnet"].compute_reduction == 5.27


@pytest.mark.parametrize(
    "name, input_shape, num_classes",
    [("resnet8", (32, 32, 3), 100), ("vgg6", (32, 32, 3), 100), ("mobilenet9", (64, 64, 3), 1000)],
)
def test_defaults_and_a_functional_logits_model(name, input_shape, num_classes):
    model = models.get(name)
    assert model.name == name
    assert isinstance(model, keras.Model) and hasattr(model, "_nodes_by_depth")
    assert tuple(model.input_shape) == (None, *input_shape)
    assert tuple(model.output_shape) == (None, num_classes)
    # Logits, no softmax.
    assert model.get_layer("logits").activation is keras.activations.linear
    assert model.layers[-1].name == "logits"


def test_num_classes_and_input_shape_are_honoured():
    model = models.get("resnet8", num_classes=5, input_shape=(16, 16, 3))
    y = model(np.zeros((2, 16, 16, 3), "float32"), training=False)
    assert tuple(y.shape) == (2, 5)


def test_each_call_builds_fresh_weights():
    a, b = models.get("resnet8"), models.get("resnet8")
    assert a.get_layer("stem_conv").kernel is not b.get_layer("stem_conv").kernel


def test_unknown_name_lists_the_valid_names():
    with pytest.raises(ValueError, match=r"Unknown model 'resnet9'\. Valid names: vgg11, vgg6, .*mobilenet9"):
        models.get("resnet9")


@pytest.mark.parametrize("num_classes", [0, -3, 2.5, True, "10"])
def test_bad_num_classes(num_classes):
    with pytest.raises(ValueError, match=r"num_classes.*Received: num_classes="):
        models.get("resnet8", num_classes=num_classes)


@pytest.mark.parametrize(
    "input_shape", [(32, 32), (32, 32, 3, 1), (32, 0, 3), (32.0, 32, 3), "32x32x3", 32, (None, 32, 3)]
)
def test_bad_input_shape(input_shape):
    with pytest.raises(ValueError, match=r"input_shape.*Received: input_shape="):
        models.get("resnet8", input_shape=input_shape)


def test_numpy_integers_are_accepted():
    model = models.get("resnet8", num_classes=np.int64(7), input_shape=np.array([16, 16, 3]).tolist())
    assert tuple(model.output_shape) == (None, 7)


def test_unknown_option_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"Unknown option\(s\) for model 'resnet8': batch_norm\. Valid options: shortcut, width_multiplier"):
        models.get("resnet8", batch_norm=False)
