"""The input contract, checked once before training: pixels go to models that normalise them.

kdkeras models take pixel values in [0, 255] (uint8 or float, as
`keras.utils.image_dataset_from_directory` and the kdkeras pipelines give them)
and normalise inside (`kdkeras.models.InputNormalization`). A model without
such a layer takes already-normalised inputs; fed raw pixels it sees values
about 100 times larger than it expects, and a distillation diverges silently
(seen: a feature term of 1e12 at the first step, NaN by the fourth).
`check_fit_inputs` looks at the first batch of `fit`'s data and refuses that
case with one error before the first step (only when a model lacks a
normalising layer: with kdkeras models no batch is read).

"Looks like pixels" means an integer dtype, or a largest |value| above
`PIXEL_THRESHOLD`: normalised images stay within a few units (CIFAR-10
statistics map [0, 255] into about [-2.0, 2.1], ImageNet's into [-2.2, 2.7]),
while a batch of real photos in [0, 255] reaches far above 10.
A model "normalises" when any of its layers (nested models included) is an
`InputNormalization`, or Keras's own `Rescaling` or `Normalization` (a user
model that scales its own pixels).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from kdkeras.models.normalization import InputNormalization

PIXEL_THRESHOLD = 10.0
NORMALISING_LAYERS = (InputNormalization, keras.layers.Rescaling, keras.layers.Normalization)


def normalises_inputs(model: keras.Model) -> bool:
    """Whether `model` scales its own inputs (see the module docstring)."""
    return any(isinstance(layer, NORMALISING_LAYERS)
               for layer in model._flatten_layers(include_self=False, recursive=True))


def first_images(data) -> np.ndarray | None:
    """The images of the first batch of `fit`'s `x`, or None where they cannot be seen.

    Reads a `tf.data.Dataset` (one batch), a `keras.utils.PyDataset` (`[0]`) or
    an array; a Python generator is not read (that would consume a batch).
    """
    if data is None:
        return None
    if isinstance(data, keras.utils.PyDataset):
        batch = data[0] if len(data) else None
    elif type(data).__module__.startswith("tensorflow") and hasattr(data, "take"):
        batch = next(iter(data.take(1)), None)
    elif hasattr(data, "shape") and hasattr(data, "dtype"):
        batch = data[:256]
    else:
        return None
    while isinstance(batch, (tuple, list)) and batch:  # (x, y[, w]); x itself may be nested
        batch = batch[0]
    if isinstance(batch, dict) or batch is None:
        return None
    return np.asarray(batch.numpy() if hasattr(batch, "numpy") else
                      keras.ops.convert_to_numpy(batch))


def check_fit_inputs(models: Sequence[keras.Model], data) -> None:
    """Refuses raw pixels in `data` for a model of `models` that does not normalise them.

    Raises:
      ValueError: the first batch looks like pixels in [0, 255] and one of
        `models` has no normalising layer.
    """
    bare = [m.name for m in models if not normalises_inputs(m)]
    if not bare:  # every model takes pixels: nothing to refuse, no batch read
        return
    images = first_images(data)
    if images is None or images.size == 0:
        return
    integer = np.issubdtype(images.dtype, np.integer)
    largest = float(np.max(np.abs(images.astype(np.float64))))
    if integer or largest > PIXEL_THRESHOLD:
        raise ValueError(
            f"The training images look like raw pixels (dtype {images.dtype}, largest |value| "
            f"{largest:g}), but model(s) {bare} have no input normalisation layer, so they "
            "would train on unnormalised pixels (and diverge). kdkeras models take pixels in "
            "[0, 255] and normalise inside: build students with kdkeras.models.get(name, ..., "
            "input_normalization=<your data's (mean, std) or a name such as 'imagenet'>), "
            "load saved teachers with kdkeras.models.load_teacher(path), or add a "
            "kdkeras.models.InputNormalization layer to your own model. Received: a first "
            f"batch of shape {images.shape}, dtype {images.dtype}, values in "
            f"[{float(images.min()):g}, {float(images.max()):g}].")
