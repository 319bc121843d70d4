"""`DatasetSplits`, the value every loader returns, and per-dataset normalisation stats."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from kdkeras.models.normalization import STATISTICS

if TYPE_CHECKING:  # tensorflow is imported where tf.data is used
    import tensorflow as tf

# Per-channel (R, G, B) mean and standard deviation of a dataset's training
# images, in [0, 1] units, by name (see `kdkeras.models.normalization.STATISTICS`,
# where they live: a model owns the normalisation it was trained with). A
# dataset's statistics are what a model trained on it is built with
# (`kdkeras.models.get(..., input_normalization=(splits.mean, splits.std))`);
# pipelines hand models pixels in [0, 255] and never normalise.
NORMALIZATION = STATISTICS


def normalization_stats(
    name: str,
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Returns `(mean, std)` registered for `name` (a key of `NORMALIZATION`)."""
    if name not in NORMALIZATION:
        raise ValueError(
            f"No normalisation statistics for {name!r}; known: {sorted(NORMALIZATION)}. "
            f"Received: name={name!r}"
        )
    return NORMALIZATION[name]


@dataclasses.dataclass(frozen=True)
class DatasetSplits:
    """A train/test pair of unbatched datasets and what is known about them.

    Attributes:
      name: registry name, e.g. `"cifar100"`.
      train, test: unbatched `tf.data.Dataset`s of `(image, label)`: `image` is a
        `uint8` tensor of shape `image_shape` (H, W, 3), `label` an `int32` scalar
        in `[0, num_classes)`.
      num_classes, image_shape, num_train, num_test: as named.
      class_names: `class_names[k]` names label `k`.
      source: one line saying where the examples came from (path, format, checks).
      mean, std: per-channel statistics of the training images in [0, 1] units
        (see `NORMALIZATION`); build the models trained on these splits with
        them (`kdkeras.models.get(..., input_normalization=(mean, std))`).
      train_labels, test_labels: all labels of each split in dataset order when the
        loader knows them without reading the images (`None` otherwise); pass
        them as `labels=` to `make_input_pipeline` to choose a subset without a
        pass over the data.
    """

    name: str
    train: tf.data.Dataset
    test: tf.data.Dataset
    num_classes: int
    image_shape: tuple[int, int, int]
    num_train: int
    num_test: int
    class_names: tuple[str, ...]
    source: str
    mean: tuple[float, float, float] = NORMALIZATION["unit"][0]
    std: tuple[float, float, float] = NORMALIZATION["unit"][1]
    train_labels: np.ndarray | None = dataclasses.field(default=None, repr=False, compare=False)
    test_labels: np.ndarray | None = dataclasses.field(default=None, repr=False, compare=False)


def channel_stats(
    images: np.ndarray, chunk: int = 4096
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 NHWC images, in [0, 1] units.

    Accumulates sums and sums of squares in float64 chunk by chunk, so a 50,000
    image array needs no float copy of itself.
    """
    channels = images.shape[-1]
    total = np.zeros(channels)
    total_sq = np.zeros(channels)
    for start in range(0, len(images), chunk):
        block = images[start : start + chunk].reshape(-1, channels).astype(np.float64)
        total += block.sum(axis=0)
        total_sq += np.square(block).sum(axis=0)
    count = images.size // channels
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    return tuple(float(m) for m in mean / 255.0), tuple(float(s) for s in std / 255.0)


def dataset_from_arrays(images: np.ndarray, labels: np.ndarray) -> tf.data.Dataset:
    """An unbatched `(uint8 image, int32 label)` dataset over in-memory arrays."""
    import tensorflow as tf

    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"images must be uint8. Received: images.dtype={images.dtype}")
    labels = np.asarray(labels).astype(np.int32)
    return tf.data.Dataset.from_tensor_slices((images, labels))


def splits_from_arrays(
    name: str,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    *,
    num_classes: int,
    class_names: Sequence[str],
    source: str,
    stats: str | None = "unit",
) -> DatasetSplits:
    """Builds `DatasetSplits` from `(images NHWC uint8, labels)` numpy pairs.

    `stats` names an entry of `NORMALIZATION`; `None` computes the mean/std of
    the training images (`channel_stats`).
    """
    (x_train, y_train), (x_test, y_test) = train, test
    mean, std = channel_stats(x_train) if stats is None else normalization_stats(stats)
    return DatasetSplits(
        name=name,
        train=dataset_from_arrays(x_train, y_train),
        test=dataset_from_arrays(x_test, y_test),
        num_classes=int(num_classes),
        image_shape=tuple(int(d) for d in x_train.shape[1:]),
        num_train=len(x_train),
        num_test=len(x_test),
        class_names=tuple(class_names),
        source=source,
        mean=mean,
        std=std,
        train_labels=np.asarray(y_train, np.int32),
        test_labels=np.asarray(y_test, np.int32),
    )
