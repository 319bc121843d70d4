"""Any `<root>/<split>/<class>/<image>` folder of JPEG/PNG files, e.g. the CIFAR-10 JPEG copy.

Read through `tfds.folder_dataset.ImageFolder`: it lists the files once (split
sizes and sorted class names come from the listing, without decoding), fixes a
deterministic file order (a seeded shuffle per split, so classes are mixed), and
decodes to uint8. (`keras.utils.image_dataset_from_directory` would return
float32, resized, batched tensors.) JPEGs are decoded with the accurate
integer IDCT (`dct_method="INTEGER_ACCURATE"`), which gives Pillow's pixels
exactly (checked on 200 CIFAR-10 JPEGs), so this path and the Pillow one of
`kdkeras.data.numpy_data` hand a model the same images. TensorFlow's default
(the fast IDCT) differs by up to 5 levels: the committed ResNet-32 teacher of
seed 0, trained on Pillow-decoded images (79.64%), scored 79.81% on it.
Label `k` is the `k`-th class folder name in sorted order.

Caching: decoding 50,000 JPEGs costs several seconds every epoch on 2 CPU cores,
so by default (`cache=True`) each split is decoded once, when `load_dataset`
runs (10-15 s for the 60,000 CIFAR-10 JPEGs on 2 busy cores), and kept in memory as
one uint8 array (60,000 x 32 x 32 x 3 = 184 MB); epochs then read memory and the
labels are known up front. `cache=False` streams and decodes the files every
epoch instead (no start-up cost, little memory; for folders too large for RAM).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import tensorflow as tf

from kdkeras.data.checksums import KNOWN_TREE_SHA256, verify_tree
from kdkeras.data.errors import DataFormatError, DataNotFoundError
from kdkeras.data.splits import DatasetSplits, normalization_stats, splits_from_arrays

CIFAR10_JPEG_ENV = "KDKERAS_CIFAR10_JPEG"


def default_cifar10_jpeg_dir() -> Path:
    """Where the CIFAR-10 JPEG copy is: `$KDKERAS_CIFAR10_JPEG`, else `shared/` beside the repo.

    The workplace keeps the data at `<repo>/../shared/data/cifar10-jpeg`; a CI
    clone finds it the same way because `shared/` sits beside the checkout.
    """
    if os.environ.get(CIFAR10_JPEG_ENV):
        return Path(os.environ[CIFAR10_JPEG_ENV]).expanduser()
    repo_root = Path(__file__).resolve().parents[2]
    return (repo_root / ".." / "shared" / "data" / "cifar10-jpeg").resolve()


def load_image_folder(
    data_dir: str | os.PathLike,
    *,
    name: str = "image_folder",
    cache: bool = True,
    image_size: tuple[int, int] | None = None,
    stats: str | None = None,
    train_split: str = "train",
    test_split: str = "test",
    verify: bool | Mapping[str, str] = False,
) -> DatasetSplits:
    """Loads `<data_dir>/<split>/<class>/<image>` as `DatasetSplits`.

    Args:
      data_dir: the root folder.
      name: the `name` of the returned splits.
      cache: decode every image once now and keep uint8 arrays in memory (see the
        module docstring); `False` decodes the files on every pass.
      image_size: `(height, width)` to resize every image to (bilinear, rounded
        back to uint8). `None`: keep the size of the first training image; every
        image must then have that size.
      stats: key of `NORMALIZATION` giving the splits' `mean`/`std`. `None`: the
        per-channel mean/std of the training images when `cache` (about 0.5 s for
        50,000 32x32 images), else the ImageNet statistics.
      train_split, test_split: the split folder names.
      verify: check each split's SHA-256 tree hash (`kdkeras.data.checksums`)
        before reading: `True` uses the published hashes of dataset `name`
        (`KNOWN_TREE_SHA256`, e.g. `"cifar10_jpeg"`), a mapping gives
        `{split: hash}`. About 1 s for the 60,000 CIFAR-10 JPEGs.

    Raises:
      DataNotFoundError: `data_dir` is missing or holds no images.
      DataFormatError: a split folder is missing, or an image cannot be decoded.
      ChecksumError: `verify` found a split whose files differ from the published ones.
    """
    import tensorflow_datasets as tfds

    root = Path(data_dir).expanduser()
    layout = f"{root}/{train_split}/<class>/<image>.jpg|png and {root}/{test_split}/<class>/..."
    if not root.is_dir():
        raise DataNotFoundError(f"Image folder {root} does not exist; expected {layout}.")
    if verify is True:
        if name not in KNOWN_TREE_SHA256:
            raise ValueError(
                f"verify=True needs published hashes, and there are none for {name!r} (known: "
                f"{sorted(KNOWN_TREE_SHA256)}). Pass verify={{split: sha256 tree hash}}.")
        verify_tree(root, KNOWN_TREE_SHA256[name], source=f"published for {name}")
    elif verify:
        verify_tree(root, dict(verify))
    builder = tfds.folder_dataset.ImageFolder(os.fspath(root), shape=(None, None, 3))
    found = sorted(builder.info.splits.keys())
    if not found:
        raise DataNotFoundError(f"No images under {root}; expected {layout}.")
    for split in (train_split, test_split):
        if split not in found or not builder.info.splits[split].num_examples:
            raise DataFormatError(
                f"Image folder {root} has no '{split}' split with images (found {found}); "
                f"expected {layout}."
            )
    class_names = tuple(builder.info.features["label"].names)
    encoded = {"image": tfds.decode.SkipDecoding()}  # the bytes, decoded by `_decode`
    if image_size is None:
        first = next(iter(builder.as_dataset(train_split, as_supervised=True,
                                              decoders=encoded).map(_decode).take(1)))
        image_shape = tuple(int(d) for d in first[0].shape)
    else:
        image_shape = (int(image_size[0]), int(image_size[1]), 3)

    def fix_image(image, label):
        image, label = _decode(image, label)
        if image_size is not None:
            image = tf.image.resize(image, image_shape[:2])
            image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
        return tf.ensure_shape(image, image_shape), tf.cast(label, tf.int32)

    datasets = {
        split: builder.as_dataset(split, as_supervised=True, shuffle_files=False,
                                  decoders=encoded).map(
            fix_image, num_parallel_calls=tf.data.AUTOTUNE
        )
        for split in (train_split, test_split)
    }
    counts = {split: builder.info.splits[split].num_examples for split in datasets}
    if cache:
        arrays = {
            split: _decode_all(ds, counts[split], image_shape) for split, ds in datasets.items()
        }
        return splits_from_arrays(
            name,
            arrays[train_split],
            arrays[test_split],
            num_classes=len(class_names),
            class_names=class_names,
            source=f"image folder {root} (tfds ImageFolder, decoded once, cached in memory)",
            stats=stats,
        )
    mean, std = normalization_stats("imagenet" if stats is None else stats)
    sized = {
        split: ds.apply(tf.data.experimental.assert_cardinality(counts[split]))
        for split, ds in datasets.items()
    }
    return DatasetSplits(
        name=name,
        train=sized[train_split],
        test=sized[test_split],
        num_classes=len(class_names),
        image_shape=image_shape,
        num_train=counts[train_split],
        num_test=counts[test_split],
        class_names=class_names,
        source=f"image folder {root} (tfds ImageFolder, decoded every pass)",
        mean=mean,
        std=std,
    )


def _decode(encoded, label):
    """uint8 RGB pixels of one encoded image; JPEGs exactly as Pillow decodes them."""
    image = tf.cond(
        tf.io.is_jpeg(encoded),
        lambda: tf.io.decode_jpeg(encoded, channels=3, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_image(encoded, channels=3, expand_animations=False))
    return image, label


def _decode_all(
    ds: tf.data.Dataset, count: int, image_shape: tuple[int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Decodes a whole split into preallocated arrays (no second copy)."""
    images = np.empty((count, *image_shape), np.uint8)
    labels = np.empty((count,), np.int32)
    start = 0
    try:
        for x, y in ds.batch(1024).prefetch(2).as_numpy_iterator():
            images[start : start + len(y)] = x
            labels[start : start + len(y)] = y
            start += len(y)
    except tf.errors.OpError as err:
        first_line = (err.message or str(err)).strip().splitlines()[0][:300]
        raise DataFormatError(
            f"Could not decode an image near position {start} of the split ({first_line}). "
            "A file may be truncated or not an image; load with verify=... to check the "
            "folder against its published hashes."
        ) from None
    if start != count:
        raise DataFormatError(f"Read {start} images where the listing had {count}.")
    return images, labels
