"""Checks every model family's tests run on each of its models, with the family's own pins."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from kdkeras import models
from kdkeras.utils import cost


def assert_taps_params_and_macs(model: keras.Model, name: str, taps: dict, params: int,
                                macs: int) -> None:
    """`taps` maps each tap name, in forward order, to its shape without the batch."""
    assert model.name == name
    assert models.tap_names(model) == list(taps)
    assert {k: tuple(v.shape[1:]) for k, v in models.feature_taps(model).items()} == taps
    assert cost.count_params(model) == params
    assert cost.count_macs(model) == macs


def _images(model: keras.Model, seed: int) -> np.ndarray:
    shape = (2, *model.input_shape[1:])  # pixels in [0, 255]: models normalise inside
    return np.random.default_rng(seed).uniform(0, 255, size=shape).astype("float32")


def assert_forward_pass_gives_logits(model: keras.Model, num_classes: int) -> None:
    y = model(_images(model, seed=0), training=False)
    assert tuple(y.shape) == (2, num_classes)
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(y)))


def _perturb_batch_norm(model: keras.Model, seed: int = 0) -> None:
    """Non-default BN statistics, so that a round trip that lost them would show."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.1, c).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, c).astype("float32"))
            layer.beta.assign(rng.normal(0, 0.1, c).astype("float32"))


def assert_save_load_round_trip_predicts_identically(model: keras.Model, folder: Path) -> None:
    """Saves `model` (BatchNorm statistics perturbed) as `.keras` in `folder`, loads it back."""
    _perturb_batch_norm(model)
    path = Path(folder) / f"{model.name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.name == model.name
    assert models.tap_names(loaded) == models.tap_names(model)
    x = _images(model, seed=1)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(x, training=False)),
        keras.ops.convert_to_numpy(model(x, training=False)),
        rtol=0,
        atol=1e-6,
    )
