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
import warnings
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
    allow_missing_classes: bool = False,
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
      allow_missing_classes: accept, with a warning naming them, classes that
        have training images but none in the test split (refused by default;
        see `check_class_folders`).

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
    check_class_folders(root, class_names, train_split, test_split, allow_missing_classes)
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
            split: _decode_all(ds, counts[split], image_shape, root / split, image_size)
            for split, ds in datasets.items()
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
    ds: tf.data.Dataset,
    count: int,
    image_shape: tuple[int, int, int],
    split_dir: Path,
    image_size=None,
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
        raise bad_image_error(split_dir, image_shape, image_size, first_line) from None
    if start != count:
        raise DataFormatError(f"Read {start} images where the listing had {count}.")
    return images, labels


# The files tfds's ImageFolder reads (its `_SUPPORTED_IMAGE_FORMAT`).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


def _images_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def _class_folders(split_dir: Path) -> list[Path]:
    if not split_dir.is_dir():
        return []
    return sorted(p for p in split_dir.iterdir() if p.is_dir())   # follows links, as tfds does


def check_class_folders(root: Path, class_names, train_split: str, test_split: str,
                        allow_missing_classes: bool = False) -> None:
    """Refuses class folders that would silently change what the model learns.

    The label set is every class folder name of every split (tfds's
    ImageFolder), so an empty class folder (or a link to a folder without
    images) made the model one class wider, and a class with no training image
    can never be predicted: both are refused. A class with training images and
    no test image is refused unless `allow_missing_classes` (then a warning
    names it): its test accuracy would silently leave it out.
    """
    root = Path(root)
    counts = {split: {p.name: len(_images_in(p)) for p in _class_folders(root / split)}
              for split in (train_split, test_split)}
    empty = [str(root / split / name) for split, by_class in counts.items()
             for name, n in by_class.items() if n == 0]
    if empty:
        raise DataFormatError(
            f"Class folder(s) {empty} hold no images ({'/'.join(IMAGE_EXTENSIONS)}); each "
            "class folder is a class, so the model would have a class it never sees. Remove "
            "them or add their images.")
    untrained = [c for c in class_names if not counts[train_split].get(c)]
    if untrained:
        raise DataFormatError(
            f"Class(es) {untrained} of {root} have no '{train_split}' images (they appear only "
            f"in another split), so the model could never predict them. Add their training "
            f"images or remove their folders. Classes in '{train_split}': "
            f"{sorted(counts[train_split])}.")
    untested = [c for c in class_names if not counts[test_split].get(c)]
    if untested:
        message = (f"Class(es) {untested} of {root} have training images but no "
                   f"'{test_split}' images: test accuracy leaves them out.")
        if not allow_missing_classes:
            raise DataFormatError(f"{message} Add their test images, or load with "
                                  "allow_missing_classes=True to accept it.")
        warnings.warn(f"{message} (allow_missing_classes=True)", stacklevel=3)


def bad_image_error(split_dir, image_shape, image_size=None, detail: str = "") -> DataFormatError:
    """The error naming the file of `split_dir` that broke decoding, and what is wrong with it.

    Only called once decoding failed, so reading every file once more (seconds
    for 50,000 JPEGs) costs nothing in a run that works.
    """
    split_dir = Path(split_dir)
    for path in _images_in_split(split_dir):
        try:
            image = tf.io.decode_image(path.read_bytes(), channels=3, expand_animations=False)
        except (tf.errors.OpError, ValueError) as err:
            reason = (getattr(err, "message", None) or str(err)).strip().splitlines()[0][:200]
            return DataFormatError(
                f"Image {path} cannot be decoded ({reason}): it is truncated or not a "
                "JPEG/PNG image. Replace or remove it.")
        shape = tuple(int(d) for d in image.shape)
        if image_size is None and shape != tuple(image_shape):
            return DataFormatError(
                f"Image {path} is {shape[0]}x{shape[1]}, but the first training image is "
                f"{image_shape[0]}x{image_shape[1]}: every image must have one size. Resize "
                "it, or load with image_size=(height, width) to resize them all.")
    return DataFormatError(f"Could not read the images of {split_dir} ({detail}).")


def _images_in_split(split_dir: Path):
    for folder in _class_folders(split_dir):
        yield from _images_in(folder)
