"""A model owns its input normalisation: `InputNormalization`, its statistics, `load_teacher`.

kdkeras models take pixel values in [0, 255] (uint8, or float32 as
`keras.utils.image_dataset_from_directory` and the kdkeras pipelines give
them) and normalise inside, with the statistics they were trained with:
their first layer is an `InputNormalization` named `"input_normalization"`,

    y = (x / 255 − mean) / std          (per channel, mean/std in [0, 1] units)

computed as `(x − 255·mean) · 1/(255·std)` with both constants rounded once to
float32, which is bit for bit what the kdkeras pipelines computed before models
owned their normalisation. Because the statistics are the layer's config (not
weights), they are saved with the model: a `.keras` file, a SavedModel or a
TFLite export of it takes raw pixels, and the layer adds no parameters.

Models saved before this contract (no such layer) are wrapped by
`load_teacher` with the statistics recorded for them beside the file
(`results.json`, key `"input_normalization"`), so a teacher is fed inputs
normalised as in its training whatever pipeline runs it.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Sequence
from pathlib import Path
from typing import Union

import keras
import numpy as np
from keras import ops

LAYER_NAME = "input_normalization"

# Per-channel (R, G, B) mean and standard deviation in [0, 1] units. The CIFAR
# values are the population mean/std over every pixel of the official training
# set (the figures torchvision users quote; the often-seen CIFAR-10 std (0.2023,
# 0.1994, 0.2010) is a mean of per-image stds, not the dataset std). "imagenet"
# is the usual full-resolution ImageNet pair (ImageNet 64x64 matches it to about
# 0.01). "unit" maps [0, 255] to [-1, 1]; for synthetic data.
STATISTICS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "cifar100": (
        (0.5070751592371323, 0.48654887331495095, 0.4409178433670343),
        (0.2673342858792401, 0.2564384629170883, 0.27615047132568404),
    ),
    "cifar10": (
        (0.49139968, 0.48215841, 0.44653091),
        (0.24703223, 0.24348513, 0.26158784),
    ),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "unit": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}
STATISTICS["imagenet64"] = STATISTICS["imagenet"]

# What `input_normalization=` accepts: a name of STATISTICS, a (mean, std)
# pair, a {"mean": ..., "std": ...} mapping (as recorded in results.json), or
# None (no layer: the model takes already-normalised inputs).
NormalizationSpec = Union[str, Sequence, dict, None]


def named_statistics(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """`(mean, std)` registered as `name` in `STATISTICS`."""
    if name not in STATISTICS:
        raise ValueError(f"No normalisation statistics named {name!r}; known: "
                         f"{', '.join(sorted(STATISTICS))}. Received: name={name!r}")
    return STATISTICS[name]


def resolve_statistics(spec: NormalizationSpec, channels: int | None = None
                       ) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """`(mean, std)` as float tuples for an `input_normalization=` value (None: None).

    Raises `ValueError` for an unknown name, a malformed pair, lengths that
    differ (from each other or from `channels`), a non-finite value or a std <= 0.
    """
    if spec is None:
        return None
    if isinstance(spec, str):
        mean, std = named_statistics(spec)
    elif isinstance(spec, dict):
        if not {"mean", "std"} <= set(spec):
            raise ValueError("An input_normalization mapping needs 'mean' and 'std'. "
                             f"Received: input_normalization={spec!r}")
        mean, std = spec["mean"], spec["std"]
    elif isinstance(spec, Sequence) and len(spec) == 2:
        mean, std = spec
    else:
        raise ValueError(
            "input_normalization must be a name of kdkeras.models.STATISTICS "
            f"({', '.join(sorted(STATISTICS))}), a (mean, std) pair or None. "
            f"Received: input_normalization={spec!r}")
    mean, std = _floats(mean, "mean"), _floats(std, "std")
    if len(mean) != len(std) or (channels is not None and len(mean) != channels):
        expected = f" ({channels} channels)" if channels is not None else ""
        raise ValueError(f"mean and std need one value per input channel{expected}. "
                         f"Received: mean={mean}, std={std}")
    if any(s <= 0 for s in std):
        raise ValueError(f"std must be positive. Received: std={std}")
    return mean, std


def _floats(values, what: str) -> tuple[float, ...]:
    ok = (isinstance(values, Sequence) and not isinstance(values, str) and len(values) > 0
          and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values))
    if not ok or not all(math.isfinite(v) for v in values):
        raise ValueError(f"{what} must be a sequence of finite numbers, one per channel. "
                         f"Received: {what}={values!r}")
    return tuple(float(v) for v in values)


@keras.saving.register_keras_serializable(package="kdkeras")
class InputNormalization(keras.layers.Layer):
    """Maps pixel values in [0, 255] to `(x / 255 − mean) / std`, channel by channel.

    Args:
      mean, std: per-channel statistics in [0, 1] units (e.g. CIFAR-10's
        `(0.4914, 0.4822, 0.4465)` / `(0.2470, 0.2435, 0.2616)`).

    Inputs: any real dtype (uint8 pixels are cast), channels last. Output:
    float32 whatever the dtype policy: the layer always computes in float32 (a
    bfloat16 copy of a model normalises as the float32 model does, and the
    next layer casts to its own compute dtype). No weights: the statistics are
    config, so they travel with the saved model and add no parameters.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], **kwargs):
        kwargs.pop("dtype", None)  # see the docstring: always float32
        super().__init__(dtype="float32", **kwargs)
        self.mean, self.std = resolve_statistics((mean, std))
        # Rounded once from float64: the constants the tf.data pipelines used.
        self._offset = np.asarray(255.0 * np.asarray(self.mean), np.float32)
        self._scale = np.asarray(1.0 / (255.0 * np.asarray(self.std)), np.float32)

    def build(self, input_shape):
        if input_shape[-1] is not None and input_shape[-1] != len(self.mean):
            raise ValueError(
                f"InputNormalization has statistics for {len(self.mean)} channels, the "
                f"input has {input_shape[-1]}. Received: input_shape={input_shape}")
        self.built = True

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        return (x - self._offset) * self._scale

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs.shape, dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update({"mean": list(self.mean), "std": list(self.std)})
        return config


def input_normalization_layer(model: keras.Model) -> InputNormalization | None:
    """The model's `InputNormalization` layer (searched through nested models), or None."""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, InputNormalization):
            return layer
    return None


def input_statistics(model: keras.Model) -> dict | None:
    """`{"mean": [...], "std": [...]}` of the model's `InputNormalization`, or None."""
    layer = input_normalization_layer(model)
    return None if layer is None else {"mean": list(layer.mean), "std": list(layer.std)}


def with_input_normalization(model: keras.Model, input_normalization: NormalizationSpec
                             ) -> keras.Model:
    """`model` with an `InputNormalization` layer in front; the same layers and weights.

    The new model is `model`'s functional graph re-run on the normalised input
    (no layer is copied: the two share every variable), so its layer names,
    taps and outputs are `model`'s, preceded by `"input_normalization"`.
    `None` returns `model` itself.
    """
    if not hasattr(model, "_run_through_graph") or len(model.inputs) != 1:
        raise ValueError(
            "with_input_normalization needs a functional model with one image input. "
            f"Received: {getattr(model, 'name', None)!r} of type {type(model).__name__}")
    if input_normalization is None:
        return model
    if input_normalization_layer(model) is not None:
        raise ValueError(f"Model {model.name!r} already has an InputNormalization layer.")
    source = model.inputs[0]
    mean, std = resolve_statistics(input_normalization, channels=source.shape[-1])
    inputs = keras.Input(batch_shape=source.shape, dtype=source.dtype,
                         name=source._keras_history.operation.name)
    x = InputNormalization(mean, std, name=LAYER_NAME)(inputs)
    outputs = model._run_through_graph(x, operation_fn=lambda layer: layer)
    return keras.Model(inputs, outputs, name=model.name)


def recorded_statistics(path) -> dict | None:
    """The `"input_normalization"` recorded in `results.json` beside a saved model, or None."""
    results = Path(path).parent / "results.json"
    if not results.exists():
        return None
    return json.loads(results.read_text()).get("input_normalization")


def load_teacher(path, *, input_normalization: NormalizationSpec = None) -> keras.Model:
    """Loads a saved model that takes pixels in [0, 255], whenever it was saved.

    A model with an `InputNormalization` layer is returned as saved. One saved
    before models owned their normalisation (trained on inputs normalised by
    the pipeline) is wrapped with `with_input_normalization`, using
    `input_normalization` if given, else the statistics recorded in the
    `results.json` beside it (key `"input_normalization"`, `{"mean", "std"}`).

    Args:
      path: a `.keras` file, or a run directory holding `model.keras`.
      input_normalization: the statistics a legacy model was trained with
        (a name of `STATISTICS`, a `(mean, std)` pair or a mapping).

    Raises:
      FileNotFoundError: no such file.
      ValueError: a legacy model with no statistics given or recorded, or
        statistics given for a model that already has its own.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "model.keras"
    if not path.exists():
        raise FileNotFoundError(f"No saved model at {path}.")
    model = keras.saving.load_model(path, compile=False)
    return ensure_input_normalization(model, path, input_normalization)


def ensure_input_normalization(model: keras.Model, path,
                               input_normalization: NormalizationSpec = None) -> keras.Model:
    """`model` (loaded from `path`) as a model taking pixels: see `load_teacher`."""
    path = Path(path)
    if input_normalization_layer(model) is not None:
        if input_normalization is not None:
            raise ValueError(
                f"{path} already normalises its inputs ({input_statistics(model)}); "
                f"do not pass statistics for it. Received: input_normalization="
                f"{input_normalization!r}")
        return model
    spec = input_normalization if input_normalization is not None else recorded_statistics(path)
    if spec is None:
        raise ValueError(
            f"{path} has no InputNormalization layer (it was saved before kdkeras models "
            "owned their normalisation) and no statistics are recorded for it in "
            f"{path.parent / 'results.json'} (key 'input_normalization'). Pass the ones it "
            "was trained with: load_teacher(path, input_normalization=(mean, std)) or a name "
            f"of {sorted(STATISTICS)}.")
    return with_input_normalization(model, spec)
