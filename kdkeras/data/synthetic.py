"""Random, learnable image data for tests and smoke runs (no files, no network)."""

from __future__ import annotations

import numpy as np

from kdkeras.data.splits import DatasetSplits, splits_from_arrays


def synthetic(
    num_train: int = 512,
    num_test: int = 128,
    num_classes: int = 10,
    image_shape: tuple[int, int, int] = (32, 32, 3),
    seed: int = 0,
) -> DatasetSplits:
    """Random uint8 images whose class can be learned from their content.

    Each class gets a random 4x4 colour pattern, upsampled to the image size;
    an image is 0.6 x its class pattern + 0.4 x uniform noise, so a small convnet
    separates the classes within a few epochs while no two images are equal.
    Labels are balanced (`i % num_classes`, then shuffled); train and test share
    the patterns. The same arguments always give the same arrays.

    Returns:
      `DatasetSplits` named `"synthetic"`, normalisation stats `"unit"`.
    """
    if num_train < 0 or num_test < 0 or num_classes < 1:
        raise ValueError(
            "Need num_train >= 0, num_test >= 0, num_classes >= 1. Received: "
            f"num_train={num_train}, num_test={num_test}, num_classes={num_classes}"
        )
    height, width, channels = (int(d) for d in image_shape)
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0.0, 255.0, (num_classes, 4, 4, channels))
    patterns = coarse.repeat(-(-height // 4), axis=1).repeat(-(-width // 4), axis=2)
    patterns = patterns[:, :height, :width]

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.permutation(np.arange(n) % num_classes).astype(np.int32)
        noise = rng.uniform(0.0, 255.0, (n, height, width, channels))
        images = 0.6 * patterns[labels] + 0.4 * noise
        return np.clip(np.round(images), 0, 255).astype(np.uint8), labels

    return splits_from_arrays(
        "synthetic",
        make(num_train),
        make(num_test),
        num_classes=num_classes,
        class_names=[f"class_{k}" for k in range(num_classes)],
        source=f"synthetic (seed={seed}, {num_classes} classes, {height}x{width}x{channels})",
        stats="unit",
    )
