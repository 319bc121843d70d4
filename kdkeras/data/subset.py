"""Class-balanced, seeded subsets of a dataset (`make_input_pipeline(subset=N)`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # tensorflow is imported where tf.data is used
    import tensorflow as tf

# Subsets up to this many bytes of images are cached in memory after the first pass.
SUBSET_CACHE_LIMIT_BYTES = 2 << 30


def select_subset(labels: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """Indices of a class-balanced random subset of `size` examples, in dataset order.

    Examples are dealt round-robin: one random example of every class (classes in
    a random order), then a second of every class, and so on, until `size` are
    chosen. So class counts differ by at most one, and a class that runs out
    simply stops contributing. The same `labels`, `size` and `seed` always give the
    same indices.

    Args:
      labels: integer labels of the whole dataset, in order.
      size: number of examples to keep, 1..len(labels).
      seed: seed of the random choice.

    Returns:
      Sorted int64 indices into `labels`.
    """
    labels = np.asarray(labels).reshape(-1)
    n = len(labels)
    if not 0 < size <= n:
        raise ValueError(f"subset must be in 1..{n} (the dataset size). Received: subset={size}")
    rng = np.random.default_rng(seed)
    classes, class_of = np.unique(labels, return_inverse=True)
    order = rng.permutation(n)  # A random order of the examples...
    class_rank = rng.permutation(len(classes))  # ...and of the classes.
    shuffled = class_of[order]
    by_class = np.argsort(shuffled, kind="stable")
    sorted_classes = shuffled[by_class]
    # Rank of each example among the (shuffled) examples of its class.
    rank = np.empty(n, np.int64)
    rank[by_class] = np.arange(n) - np.searchsorted(sorted_classes, sorted_classes, side="left")
    deal_order = np.argsort(rank * len(classes) + class_rank[shuffled], kind="stable")
    return np.sort(order[deal_order[:size]])


def dataset_labels(ds: tf.data.Dataset) -> np.ndarray:
    """All labels of an unbatched `(image, label)` dataset, by one pass over it."""
    import tensorflow as tf

    def label_only(image, label):
        del image
        return label

    batches = list(ds.map(label_only).batch(65536).as_numpy_iterator())
    return np.concatenate(batches) if batches else np.zeros((0,), np.int32)


def take_subset(
    ds: tf.data.Dataset,
    size: int,
    *,
    labels: np.ndarray | None = None,
    seed: int = 0,
) -> tf.data.Dataset:
    """Keeps the `select_subset(labels, size, seed)` examples of `ds`, in order.

    Args:
      ds: unbatched `(image, label)` dataset.
      size: number of examples to keep.
      labels: the labels of `ds` in order if known; otherwise one pass reads them.
      seed: seed of the choice (see `select_subset`).

    The examples are found by position, so `ds` must yield the same order on
    every pass: keep `tf.data.Options.deterministic` on (the default;
    `make_input_pipeline` does so whenever it takes a subset).

    Returns:
      The subset, with known cardinality `size`; cached in memory after its first
      pass when its images take at most `SUBSET_CACHE_LIMIT_BYTES`.
    """
    import tensorflow as tf

    labels = dataset_labels(ds) if labels is None else np.asarray(labels).reshape(-1)
    cardinality = int(ds.cardinality())
    if cardinality >= 0 and cardinality != len(labels):
        raise ValueError(
            f"labels has {len(labels)} entries but the dataset has {cardinality} examples."
        )
    keep = np.zeros(len(labels), bool)
    keep[select_subset(labels, size, seed)] = True
    keep = tf.constant(keep)

    def is_kept(index, example):
        del example
        return tf.gather(keep, index)

    def drop_index(index, example):
        del index
        return example

    subset = ds.enumerate().filter(is_kept).map(drop_index)
    image_spec = ds.element_spec[0]
    if image_spec.shape.is_fully_defined():
        nbytes = size * image_spec.shape.num_elements() * image_spec.dtype.size
        if nbytes <= SUBSET_CACHE_LIMIT_BYTES:
            subset = subset.cache()
    return subset.apply(tf.data.experimental.assert_cardinality(size))
