"""`make_input_pipeline`: subset, shuffle, batch, augment, normalise, prefetch."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from kdkeras.data.augment import augment_batch
from kdkeras.data.splits import normalization_stats
from kdkeras.data.subset import take_subset


def make_input_pipeline(
    ds: tf.data.Dataset,
    *,
    training: bool,
    batch_size: int,
    seed: int | None = None,
    augment: bool = True,
    subset: int | None = None,
    subset_seed: int = 0,
    labels: np.ndarray | None = None,
    shuffle_buffer: int = 50_000,
    mean: str | Sequence[float] = "cifar100",
    std: Sequence[float] | None = None,
    shift: float = 0.125,
    rotation: float = 15.0,
    flip: bool = True,
    fill_mode: str = "reflect",
    fill_value: float = 0.0,
    deterministic: bool | None = None,
    drop_remainder: bool | None = None,
) -> tf.data.Dataset:
    """Batches an unbatched `(uint8 image, label)` dataset for training or evaluation.

    Order of operations: subset -> shuffle (training) -> batch -> augment
    (training and `augment`) -> normalise -> prefetch. Augmentation runs on whole
    batches (see `kdkeras.data.augment`), which is several times faster on CPU
    than per image.

    Determinism: with an integer `seed`, the shuffle order and every batch's
    augmentation are seeded (augmentation uses stateless ops whose seed for each
    batch is drawn from `tf.data.Dataset.random(seed)`, new on every epoch), so two
    pipelines built with the same seed yield identical batches, epoch after
    epoch, given the same TensorFlow global seed (which `keras.utils.set_random_seed`
    sets; tf.data combines it with op seeds). This needs the parallel map to keep
    batch order (`tf.data.Options.deterministic`), which `deterministic=None` turns
    on whenever `seed` is given; with `deterministic=False` the same batches may
    come out in a slightly different order (a little faster). `seed=None` gives a
    different order and augmentation on each run. A `subset` always needs a fixed
    input order (the chosen examples are found by position), so it forces
    `deterministic=True` too.

    Args:
      ds: unbatched dataset of `(image uint8 (H, W, C), label int)`, e.g.
        `DatasetSplits.train`.
      training: shuffle, augment and (by default) drop the last partial batch.
      batch_size: examples per batch.
      seed: seed of the shuffle and augmentation (see above).
      augment: apply shift/rotation/flip when `training` (ignored otherwise).
      subset: keep only this many examples, chosen class-balanced at random with
        `subset_seed` (see `kdkeras.data.subset.select_subset`) and kept in dataset
        order. The choice does not depend on `seed`, so runs with different seeds
        train on the same examples. `None` keeps all.
      subset_seed: seed of the subset choice.
      labels: the labels of `ds` in order, if known (`DatasetSplits.train_labels`);
        saves one pass over the data when `subset` is set.
      shuffle_buffer: size of the shuffle buffer, capped at the dataset size (the
        default holds all of CIFAR, i.e. a full shuffle).
      mean, std: per-channel statistics in [0, 1] units; images become
        `(x / 255 - mean) / std`. `mean` may instead name an entry of
        `kdkeras.data.NORMALIZATION` (`"cifar100"`, `"cifar10"`, `"imagenet64"`,
        `"unit"`), with `std=None`. Pass `DatasetSplits.mean`/`.std`.
      shift: largest random shift, as a fraction of the image side (0.125 = 4 px
        of 32), in whole pixels.
      rotation: largest random rotation in degrees.
      flip: random horizontal flips.
      fill_mode, fill_value: how pixels from outside the image are filled
        (`"reflect"`, `"constant"` with `fill_value` in [0, 255] pixel units,
        `"nearest"`, `"wrap"`).
      deterministic: keep the order of parallel work fixed, in this pipeline and
        the input's (tf.data options are global to a pipeline); `None` means
        `seed is not None or subset is not None`. `False` with a subset is refused.
      drop_remainder: drop the last partial batch; default `training`.

    Returns:
      A `tf.data.Dataset` of `(float32 (B, H, W, C), int32 (B,))`. Its cardinality
      (number of batches, `len(ds)`) is known when the input's is. The attribute
      `num_examples` holds how many examples it draws from (after `subset`;
      `None` if unknown); with `drop_remainder` an epoch yields
      `num_examples // batch_size` full batches.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1. Received: batch_size={batch_size}")
    mean_values, std_values = _resolve_stats(mean, std)
    if drop_remainder is None:
        drop_remainder = training
    if deterministic is None:
        deterministic = seed is not None or subset is not None
    elif subset is not None and not deterministic:
        raise ValueError(
            "subset needs a deterministic input order (examples are picked by position). "
            f"Received: subset={subset}, deterministic={deterministic}"
        )

    if subset is not None:
        ds = take_subset(ds, subset, labels=labels, seed=subset_seed)
    cardinality = int(ds.cardinality())
    num_examples = cardinality if cardinality >= 0 else None
    if training:
        buffer = shuffle_buffer if num_examples is None else min(shuffle_buffer, num_examples)
        ds = ds.shuffle(max(1, buffer), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)

    offset = tf.constant(255.0 * np.asarray(mean_values), tf.float32)
    scale = tf.constant(1.0 / (255.0 * np.asarray(std_values)), tf.float32)

    def normalise(images, labels_):
        return (tf.cast(images, tf.float32) - offset) * scale, tf.cast(labels_, tf.int32)

    if training and augment:
        per_batch_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)

        def augment_and_normalise(batch, batch_seed):
            images, labels_ = batch
            images = augment_batch(
                tf.cast(images, tf.float32),
                tf.stack([batch_seed, tf.constant(0, tf.int64)]),
                shift=shift,
                rotation=rotation,
                flip=flip,
                fill_mode=fill_mode,
                fill_value=fill_value,
            )
            return normalise(images, labels_)

        ds = tf.data.Dataset.zip(ds, per_batch_seeds).map(
            augment_and_normalise, num_parallel_calls=tf.data.AUTOTUNE
        )
    else:
        ds = ds.map(normalise, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = deterministic
    ds = ds.with_options(options)
    ds.num_examples = num_examples
    return ds


def _resolve_stats(
    mean: str | Sequence[float], std: Sequence[float] | None
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    if isinstance(mean, str):
        if std is not None:
            raise ValueError(
                "When mean names a dataset, std must be None. "
                f"Received: mean={mean!r}, std={std!r}"
            )
        return normalization_stats(mean)
    if std is None or len(mean) != len(std):
        raise ValueError(
            "mean and std must be sequences of the same length. "
            f"Received: mean={mean!r}, std={std!r}"
        )
    if any(s <= 0 for s in std):
        raise ValueError(f"std must be positive. Received: std={std!r}")
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)
