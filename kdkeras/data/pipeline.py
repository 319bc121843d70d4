"""`make_input_pipeline`: subset, shuffle, batch, augment, prefetch; pixels stay in [0, 255].

Models own their normalisation (`kdkeras.models.InputNormalization`), so the
pipeline hands them float32 pixel values in [0, 255], augmented, and each
model normalises them with the statistics it was trained with: a teacher
trained elsewhere is fed what it was trained on whatever pipeline runs it.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from kdkeras.data.augment import augment_batch
from kdkeras.data.augment_spec import PAPER_AUGMENTATION as _PAPER
from kdkeras.data.subset import take_subset


def make_input_pipeline(
    ds: tf.data.Dataset, *, training: bool, batch_size: int, seed: int | None = None,
    augment: bool = True, subset: int | None = None, subset_seed: int = 0,
    labels: np.ndarray | None = None, shuffle_buffer: int = 50_000,
    shift: float = _PAPER.shift, rotation: float = _PAPER.rotation, flip: bool = _PAPER.flip,
    fill_mode: str = _PAPER.fill_mode, fill_value: float = _PAPER.fill_value,
    deterministic: bool | None = None, drop_remainder: bool | None = None,
    epochs: int | None = None, initial_epoch: int = 0,
) -> tf.data.Dataset:
    """Batches an unbatched `(uint8 image, label)` dataset for training or evaluation.

    Order of operations: subset -> shuffle (training) -> batch -> cast to
    float32 -> augment (training and `augment`) -> prefetch. Augmentation runs
    on whole batches (see `kdkeras.data.augment`), which is several times faster
    on CPU than per image. Nothing is normalised: batches hold pixel values in
    [0, 255] (bilinear resampling and reflected or constant fills in [0, 255]
    keep them there), for models that normalise inside
    (`kdkeras.models.get(..., input_normalization=(splits.mean, splits.std))`).

    Determinism: every training epoch is a pure function of `(seed, key)`: its
    shuffle is seeded by a hash of the pair and batch `b`'s augmentation by
    `(hash, b)` (stateless ops). With `epochs` given, the key is the epoch number
    and the dataset holds epochs `initial_epoch .. epochs-1` back to back (fit it
    with `steps_per_epoch=ds.steps_per_epoch`): a run resumed at epoch e builds
    the pipeline with `initial_epoch=e` and sees exactly the batches the
    uninterrupted run saw from epoch e on. With `epochs=None` the dataset is one
    epoch and each new iteration draws its key from `tf.data.Dataset.random(seed)`
    (new on every iteration), so two pipelines built with the same seed yield
    identical batches, epoch after epoch, but only counting from their first
    iteration, given the same TensorFlow global seed (which
    `keras.utils.set_random_seed` sets; tf.data combines it with that op seed;
    the `epochs` form does not depend on it). Both need
    the parallel map to keep batch order (`tf.data.Options.deterministic`), which
    `deterministic=None` turns on whenever `seed` is given; with
    `deterministic=False` the same batches may come out in a slightly different
    order (a little faster). `seed=None` gives a different order and augmentation
    on each run. A `subset` always needs a fixed input order (the chosen examples
    are found by position), so it forces `deterministic=True` too. An eval
    pipeline (`training=False`) keeps its input order by default: predictions
    are matched to examples by position, and under load a parallel map
    reordered the batches (seen in CI).

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
      shift: largest random shift, as a fraction of the image side (0.125 = 4 px
        of 32), in whole pixels.
      rotation: largest random rotation in degrees.
      flip: random horizontal flips.
      fill_mode, fill_value: how pixels from outside the image are filled
        (`"reflect"`, `"constant"` with `fill_value` in [0, 255] pixel units,
        `"nearest"`, `"wrap"`). The fill is applied to pixels, before the
        model normalises, as it always was: `"constant"` with 0 fills black,
        not the mean colour.
      deterministic: keep the order of parallel work fixed, in this pipeline and
        the input's (tf.data options are global to a pipeline); `None` means
        `not training or seed is not None or subset is not None`. `False` with a
        subset is refused.
      drop_remainder: drop the last partial batch; default `training`.
      epochs: with `training`, the dataset spans the epochs `initial_epoch` ..
        `epochs - 1`, each seeded by its number (see Determinism). `None`: one
        epoch per iteration.
      initial_epoch: the first epoch of the dataset when `epochs` is given (the
        epoch a resumed run starts at).

    Returns:
      A `tf.data.Dataset` of `(float32 (B, H, W, C) pixels in [0, 255], int32 (B,))`. Its cardinality
      (number of batches, `len(ds)`) is known when the input's is. The attribute
      `num_examples` holds how many examples it draws from (after `subset`;
      `None` if unknown); with `drop_remainder` an epoch yields
      `num_examples // batch_size` full batches. `steps_per_epoch` holds the
      batches of one epoch (`None` if unknown).
    """
    drop_remainder, deterministic = _resolve_options(
        training, batch_size, seed, subset, deterministic, drop_remainder, epochs, initial_epoch)
    if subset is not None:
        ds = take_subset(ds, subset, labels=labels, seed=subset_seed)
    num_examples, steps_per_epoch = _epoch_size(ds, batch_size, drop_remainder)
    if training:
        if epochs is not None and steps_per_epoch is None:
            raise ValueError(
                "epochs= needs a dataset of known size (to tell where each epoch ends); apply "
                "tf.data.experimental.assert_cardinality(n) to it. Received: a dataset of "
                "unknown cardinality.")
        ds = _epochs(ds, seed, num_examples, shuffle_buffer, batch_size, drop_remainder,
                     epochs, initial_epoch)
        if steps_per_epoch is not None:
            epochs_held = 1 if epochs is None else epochs - initial_epoch
            ds = ds.apply(tf.data.experimental.assert_cardinality(steps_per_epoch * epochs_held))
        augmentation = dict(shift=shift, rotation=rotation, flip=flip, fill_mode=fill_mode,
                            fill_value=fill_value) if augment else None
        ds = ds.map(lambda batch, batch_seed: _augmented(batch, batch_seed, augmentation),
                    num_parallel_calls=tf.data.AUTOTUNE)
    else:
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
        ds = ds.map(_to_float, num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = deterministic
    ds = ds.prefetch(tf.data.AUTOTUNE).with_options(options)
    ds.num_examples, ds.steps_per_epoch = num_examples, steps_per_epoch
    return ds


def _resolve_options(training, batch_size, seed, subset, deterministic, drop_remainder, epochs,
                     initial_epoch) -> tuple[bool, bool]:
    """`(drop_remainder, deterministic)` with their defaults applied; bad values refused."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1. Received: batch_size={batch_size}")
    if epochs is not None and not 0 <= initial_epoch <= epochs:
        raise ValueError("Need 0 <= initial_epoch <= epochs. "
                         f"Received: initial_epoch={initial_epoch}, epochs={epochs}")
    if deterministic is None:
        deterministic = not training or seed is not None or subset is not None
    elif subset is not None and not deterministic:
        raise ValueError("subset needs a deterministic input order (examples are picked by "
                         f"position). Received: subset={subset}, deterministic={deterministic}")
    return training if drop_remainder is None else drop_remainder, deterministic


def _epoch_size(ds, batch_size: int, drop_remainder: bool) -> tuple[int | None, int | None]:
    """`(examples, batches)` of one epoch of `ds`; `(None, None)` if its size is unknown."""
    cardinality = int(ds.cardinality())
    if cardinality < 0:
        return None, None
    batches = cardinality // batch_size if drop_remainder else -(-cardinality // batch_size)
    return cardinality, batches


def _to_float(images, labels):
    return tf.cast(images, tf.float32), tf.cast(labels, tf.int32)


def _augmented(batch, batch_seed, augmentation: dict | None):
    """A training batch as float32 pixels, augmented with `batch_seed` (None: as it is)."""
    images, labels = _to_float(*batch)
    if augmentation is not None:
        images = augment_batch(images, batch_seed, **augmentation)
    return images, labels


def _epochs(ds: tf.data.Dataset, seed: int | None, num_examples: int | None,
            shuffle_buffer: int, batch_size: int, drop_remainder: bool, epochs: int | None,
            initial_epoch: int) -> tf.data.Dataset:
    """Shuffled batches of the epochs, each paired with its augmentation seed.

    Epoch `key` is shuffled with the seed `h = hash(seed, key)` and its batch `b`
    is augmented with the stateless seed `(h, b)`: an epoch depends on nothing
    but `(seed, key)`, so it can be rebuilt on its own (a resumed run).
    """
    if seed is None:  # A fresh seed for this pipeline: different on every run.
        seed = int(np.random.SeedSequence().generate_state(1, np.uint32)[0])
    buffer = max(1, shuffle_buffer if num_examples is None else min(shuffle_buffer, num_examples))

    def one_epoch(key):
        # This function is traced into its own graph: fixing that graph's seed here
        # makes the shuffle's seed pair (graph seed, epoch hash) independent of the
        # global seed (tf.data would combine the two, and it cannot when the global
        # seed is 0 and the op seed a tensor).
        tf.random.set_seed(seed % (2**31 - 2) + 1)
        pair = tf.stack([tf.constant(seed, tf.int64), tf.cast(key, tf.int64)])
        epoch_hash = tf.random.stateless_uniform([], seed=pair, minval=None, maxval=None,
                                                 dtype=tf.int64)
        batches = ds.shuffle(buffer, seed=epoch_hash, reshuffle_each_iteration=False)
        batches = batches.batch(batch_size, drop_remainder=drop_remainder)
        return batches.enumerate().map(lambda b, batch: (batch, tf.stack([epoch_hash, b])),
                                       num_parallel_calls=None)

    if epochs is None:  # One epoch per iteration, keyed by a per-iteration draw.
        keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)
    else:
        keys = tf.data.Dataset.range(initial_epoch, epochs)
    return keys.flat_map(one_epoch)

