"""`fold_batch_norms`: BatchNormalization folded into the layer before it, checked by hand and on every family."""

import keras
import numpy as np
import pytest

from helpers import randomise_batch_norm
from kdkeras import models
from kdkeras.models.folding import FoldedBatchNorm, FoldedLinear, fold_batch_norms, foldable_pairs


def _bn_count(model):
    return sum(isinstance(l, keras.layers.BatchNormalization) for l in model.layers)


def test_hand_worked_fold_of_a_1x1_convolution():
    x = keras.Input((1, 1, 1))
    conv = keras.layers.Conv2D(2, 1, use_bias=True, name="conv")
    bn = keras.layers.BatchNormalization(epsilon=1.0, name="bn")
    model = keras.Model(x, bn(conv(x)))
    conv.set_weights([np.array([[[[2.0, 3.0]]]]), np.array([1.0, -1.0])])
    # gamma, beta, mean, variance: s = gamma / sqrt(var + eps) = [4/2, 3/1] = [2, 3]
    bn.set_weights([np.array([4.0, 3.0]), np.array([0.5, 0.0]), np.array([1.0, 2.0]),
                    np.array([3.0, 0.0])])
    folded = fold_batch_norms(model)
    kernel, bias = (np.asarray(w) for w in folded.get_layer("conv").folded_weights())
    # kernel' = kernel * s = [4, 9]; bias' = (bias - mean) * s + beta = [0 * 2 + 0.5, -3 * 3] = [0.5, -9]
    np.testing.assert_allclose(kernel.reshape(-1), [4.0, 9.0])
    np.testing.assert_allclose(bias, [0.5, -9.0])
    assert isinstance(folded.get_layer("bn"), FoldedBatchNorm)
    # y = 5: conv gives [11, 14]; BN gives [(11 - 1) * 2 + 0.5, (14 - 2) * 3] = [20.5, 36]
    np.testing.assert_allclose(np.asarray(folded(np.full((1, 1, 1, 1), 5.0))).reshape(-1),
                               [20.5, 36.0], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(model(np.full((1, 1, 1, 1), 5.0))).reshape(-1),
                               [20.5, 36.0], rtol=1e-6)


@pytest.mark.parametrize("name", ["resnet8", "vgg6", "mobilenet9"])
def test_every_family_folds_completely_and_computes_the_same(name):
    model = randomise_batch_norm(models.get(name, num_classes=5, input_shape=(32, 32, 3)))
    before = [w.copy() for w in model.get_weights()]
    tapped = models.tapped_model(model)
    folded = fold_batch_norms(tapped)
    assert _bn_count(folded) == 0 and len(foldable_pairs(tapped)) == _bn_count(model) > 0
    assert [l.name for l in folded.layers] == [l.name for l in tapped.layers]
    x = np.random.default_rng(1).normal(size=(3, 32, 32, 3)).astype("float32")
    want, got = tapped(x, training=False), folded(x, training=False)
    assert len(got) == len(want)
    for a, b in zip(want, got):
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape
        assert np.max(np.abs(a - b)) <= 1e-5 * np.max(np.abs(a)) + 1e-6
    # The model it came from is untouched: same weights, still trainable, still normalising.
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert model.trainable and _bn_count(model) > 0
    # A view: no variable of its own.
    assert {id(v) for v in folded.weights} <= {id(v) for v in model.weights}


def test_what_must_not_fold_is_left_alone():
    x = keras.Input((4, 4, 2))
    act = keras.layers.Conv2D(3, 1, activation="relu", name="conv_relu")(x)
    a = keras.layers.BatchNormalization(name="bn_after_activation")(act)
    shared = keras.layers.Conv2D(3, 1, name="conv_read_twice")(x)
    b = keras.layers.BatchNormalization(name="bn_of_shared")(shared)
    b = keras.layers.Add()([b, shared])
    kept = keras.layers.Conv2D(3, 1, name="conv_kept")(x)
    c = keras.layers.BatchNormalization(name="bn_of_kept")(kept)
    first = keras.layers.Conv2D(3, 1, name="conv_folds")(x)
    d = keras.layers.BatchNormalization(name="bn_folds")(first)
    model = randomise_batch_norm(keras.Model(x, keras.layers.Concatenate()([a, b, c, d])))
    assert foldable_pairs(model, keep=["conv_kept"]) == {"bn_folds": "conv_folds"}
    assert foldable_pairs(model) == {"bn_of_kept": "conv_kept", "bn_folds": "conv_folds"}
    folded = fold_batch_norms(model, keep=["conv_kept"])
    assert _bn_count(folded) == 3
    inputs = np.random.default_rng(0).normal(size=(2, 4, 4, 2)).astype("float32")
    np.testing.assert_allclose(np.asarray(folded(inputs)), np.asarray(model(inputs)),
                               rtol=1e-5, atol=1e-5)


def test_the_folded_view_follows_the_model_s_variables():
    """Loading a checkpoint into the model (as a resumed run does) must reach the fold."""
    model = randomise_batch_norm(models.get("resnet8", num_classes=4, input_shape=(16, 16, 3)))
    folded = fold_batch_norms(model)
    x = np.random.default_rng(2).normal(size=(2, 16, 16, 3)).astype("float32")
    before = np.asarray(folded(x))
    randomise_batch_norm(model, seed=7)
    after, want = np.asarray(folded(x)), np.asarray(model(x, training=False))
    assert np.max(np.abs(after - before)) > 1e-2 * np.max(np.abs(want))
    np.testing.assert_allclose(after, want, rtol=1e-5, atol=1e-5 * np.max(np.abs(want)))
    assert sum(isinstance(l, FoldedLinear) for l in folded.layers) == _bn_count(model)


def test_a_subclassed_model_is_refused_clearly():
    class Net(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="Folding BatchNormalization needs a functional"):
        fold_batch_norms(Net())
