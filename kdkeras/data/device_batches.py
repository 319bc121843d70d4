"""A training set held on the device as uint8, batched and augmented there from a seed.

The table engine (`kdkeras.training.table_engine`) keeps the whole training set
in device memory (CIFAR-10: 50,000×32×32×3 uint8, 150 MB) and makes every
batch inside its compiled program: no host work, no transfer per step.

* epoch e's order is `jax.random.permutation` of key (seed, 0, e): the first
  `steps_per_epoch · batch_size` positions, so the last partial batch is
  dropped as `ArrayBatches(training=True)` does;
* batch i of epoch e is gathered from that order, cast to float32 and
  augmented with key (seed, 1, e, i) (`kdkeras.data.device_augment`, the
  tf.data path's warp);
* then `model_inputs` turns pixels into what the models take: the one place
  where inputs are normalised (`(x/255 − mean)/std`, or nothing with
  `stats=None`, for models that normalise their own inputs).

Every key depends on (seed, epoch, step) alone, so an epoch started anew (a
resumed run) sees the batches the uninterrupted run saw. JAX's default
threefry generator gives the same numbers on every platform, so a CPU smoke
run and a GPU run of one seed see the same batches.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from kdkeras.data import device_augment
from kdkeras.data.augment_spec import PAPER_AUGMENTATION, AugmentSpec

_ORDER, _AUGMENT = 0, 1


def model_inputs(pixels, stats: Optional[tuple]):
    """Float pixels in [0, 255] as the models take them: `(x/255 − mean)/std`, or as they are.

    `stats` is `(mean, std)` per channel in [0, 1] units, or None for models
    that normalise their inputs themselves. The one normalisation call site of
    the device data path.
    """
    if stats is None:
        return pixels
    mean, std = (jnp.asarray(s, jnp.float32) for s in stats)
    return (pixels - 255.0 * mean) / (255.0 * std)


@dataclasses.dataclass(frozen=True)
class DeviceBatches:
    """How batches are cut from a device-resident training set (the arrays travel separately).

    Attributes:
      num_examples: N, the training images on the device.
      batch_size: B.
      augment: the augmentation, or None for none.
      stats: `(mean, std)` for `model_inputs`, or None.
    """

    num_examples: int
    batch_size: int
    augment: Optional[AugmentSpec] = PAPER_AUGMENTATION
    stats: Optional[tuple] = None

    def __post_init__(self):
        if not 1 <= self.batch_size <= self.num_examples:
            raise ValueError(f"batch_size must be in [1, {self.num_examples}] (the training "
                             f"images). Received: batch_size={self.batch_size}.")

    @property
    def steps_per_epoch(self) -> int:
        return self.num_examples // self.batch_size

    def epoch_order(self, seed: int, epoch):
        """The example order of `epoch` for `seed` (traceable in `epoch`)."""
        key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), _ORDER), epoch)
        return jax.random.permutation(key, self.num_examples)

    def batch(self, images, labels, order, seed: int, epoch, step):
        """Batch `step` of the epoch whose order is `order`: (model inputs, int32 labels)."""
        index = jax.lax.dynamic_slice_in_dim(order, step * self.batch_size, self.batch_size)
        x = images[index].astype(jnp.float32)
        if self.augment is not None:
            key = jax.random.key(seed)
            for part in (_AUGMENT, epoch, step):
                key = jax.random.fold_in(key, part)
            x = device_augment.augment_batch(x, key, self.augment)
        return model_inputs(x, self.stats), labels[index].astype(jnp.int32)


def to_device(images: np.ndarray, labels: np.ndarray):
    """uint8 NHWC images and integer labels as device arrays (refused if not uint8 NHWC)."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError("images must be uint8 (N, H, W, C). Received: "
                         f"dtype={images.dtype}, shape={images.shape}")
    if len(labels) != len(images):
        raise ValueError(f"{len(images)} images but {len(labels)} labels.")
    return jnp.asarray(images), jnp.asarray(np.asarray(labels, np.int32))
