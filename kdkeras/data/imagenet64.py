"""Downsampled ImageNet 64x64 (Chrabaszcz, Loshchilov & Hutter 2017, arXiv:1707.08819).

The npz release, from a local directory (it cannot be downloaded anonymously):

    <data_dir>/Imagenet64_train_npz/train_data_batch_1.npz ... train_data_batch_10.npz
    <data_dir>/Imagenet64_val_npz/val_data.npz

or the same files directly in `<data_dir>` (any sub-folder one level down is
searched, so the `..._part1`/`..._part2` folders of the split download work too).
Each npz holds `data`, N x 12288 uint8 where one row is the R plane, then G, then B
(each 64x64, rows top to bottom), `labels`, 1-based class ids 1..1000, and, in the
training files, `mean` (unused here). Images come out NHWC (`reshape(N, 3, 64, 64)`
then `transpose(0, 2, 3, 1)`) and labels 0-based.

The 1.28 M training images are 15.7 GB as uint8, so nothing is cached: the splits
stream one npz file at a time (each file is decompressed whole, ~1.6 GB, when the
stream reaches it). Shapes, dtypes and label ranges are checked when loading,
from the npy headers and the (small) label arrays, before any image is read.
"""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from kdkeras.data.errors import DataFormatError, DataNotFoundError
from kdkeras.data.splits import DatasetSplits, normalization_stats

NUM_CLASSES = 1000
TRAIN_GLOB = "train_data_batch_*.npz"
VAL_FILE = "val_data.npz"
CLASS_MAP_FILE = "map_clsloc.txt"
_CHUNK = 1024


def load_imagenet64(data_dir: str | os.PathLike, *, image_size: int = 64) -> DatasetSplits:
    """Loads the ImageNet64 npz release as `DatasetSplits` (`test` is the val set).

    Args:
      data_dir: folder holding the files or the `Imagenet64_*_npz` folders.
      image_size: side of the images (64; the same format at 32 or 16 is
        `Imagenet32`/`Imagenet16`).

    Raises:
      DataNotFoundError: the folder or its npz files are missing.
      DataFormatError: an array has the wrong shape/dtype, or labels are outside 1..1000.
    """
    root = Path(data_dir).expanduser()
    layout = (
        f"{root}/Imagenet64_train_npz/{TRAIN_GLOB} and {root}/Imagenet64_val_npz/{VAL_FILE} "
        "(or the files directly in the folder)"
    )
    if not root.is_dir():
        raise DataNotFoundError(
            f"ImageNet64 folder {root} does not exist; expected {layout}. Download the npz "
            "files (Imagenet64_train_part1/part2, Imagenet64_val) from "
            "https://image-net.org/download-images (login needed) and unzip them there."
        )
    folders = [root] + sorted(p for p in root.iterdir() if p.is_dir())
    train_files = sorted(
        {f for d in folders for f in d.glob(TRAIN_GLOB)}, key=_batch_number
    )
    val_files = [d / VAL_FILE for d in folders if (d / VAL_FILE).is_file()]
    if not train_files:
        raise DataNotFoundError(f"No ImageNet64 training files in {root}; expected {layout}.")
    if not val_files:
        raise DataNotFoundError(f"No ImageNet64 {VAL_FILE} in {root}; expected {layout}.")
    if len(val_files) > 1:
        raise DataFormatError(f"Several {VAL_FILE} under {root}: {[str(f) for f in val_files]}.")

    train_labels = [_check_file(f, image_size) for f in train_files]
    val_labels = _check_file(val_files[0], image_size)
    mean, std = normalization_stats("imagenet64")
    numbers = [_batch_number(f) for f in train_files]
    return DatasetSplits(
        name="imagenet64",
        train=_stream(train_files, image_size, sum(len(y) for y in train_labels)),
        test=_stream(val_files, image_size, len(val_labels)),
        num_classes=NUM_CLASSES,
        image_shape=(image_size, image_size, 3),
        num_train=sum(len(y) for y in train_labels),
        num_test=len(val_labels),
        class_names=_class_names(folders),
        source=(
            f"ImageNet{image_size} npz from {root} (train batches {numbers}, "
            f"{val_files[0].name}; streamed, not cached)"
        ),
        mean=mean,
        std=std,
        train_labels=np.concatenate(train_labels),
        test_labels=val_labels,
    )


def _batch_number(path: Path) -> int:
    match = re.search(r"(\d+)\.npz$", path.name)
    return int(match.group(1)) if match else 0


def _npy_header(path: Path, key: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of array `key` of an npz, read from its header only."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataFormatError(f"{path} is not a readable npz file ({e}).") from None
    with archive:
        member = f"{key}.npy"
        if member not in archive.namelist():
            have = [n.removesuffix(".npy") for n in archive.namelist()]
            raise DataFormatError(f"{path} has no '{key}' array (it has {have}).")
        with archive.open(member) as f:
            try:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                else:
                    shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            except ValueError as e:
                raise DataFormatError(f"{path}: '{key}' is not a valid npy array ({e}).") from None
    return shape, dtype


def _check_file(path: Path, image_size: int) -> np.ndarray:
    """Validates one npz file and returns its labels, converted to 0-based int32."""
    shape, dtype = _npy_header(path, "data")
    row = 3 * image_size * image_size
    if len(shape) != 2 or shape[1] != row or dtype != np.uint8:
        raise DataFormatError(
            f"{path}: 'data' must be uint8 of shape (N, {row}) (3 x {image_size} x "
            f"{image_size} CHW planes), got {dtype} {shape}."
        )
    _npy_header(path, "labels")  # Missing 'labels' -> a clear error before np.load.
    with np.load(path) as content:
        labels = np.asarray(content["labels"])
    if labels.shape != (shape[0],):
        raise DataFormatError(f"{path}: labels have shape {labels.shape}, expected ({shape[0]},).")
    if len(labels) and (labels.min() < 1 or labels.max() > NUM_CLASSES):
        hint = " (they look 0-based; the release stores 1..1000)" if labels.min() == 0 else ""
        raise DataFormatError(
            f"{path}: labels must lie in 1..{NUM_CLASSES}, "
            f"got {labels.min()}..{labels.max()}{hint}."
        )
    return (labels - 1).astype(np.int32)


def _stream(files: list[Path], image_size: int, count: int) -> tf.data.Dataset:
    """An unbatched dataset reading `files` in order, one decompressed file at a time."""
    paths = [os.fspath(f) for f in files]

    def chunks():
        for path in paths:
            with np.load(path) as content:
                data, labels = content["data"], content["labels"]
            images = data.reshape(-1, 3, image_size, image_size).transpose(0, 2, 3, 1)
            labels = labels.astype(np.int32) - 1
            for start in range(0, len(labels), _CHUNK):
                stop = start + _CHUNK
                yield np.ascontiguousarray(images[start:stop]), labels[start:stop]

    spec = (
        tf.TensorSpec((None, image_size, image_size, 3), tf.uint8),
        tf.TensorSpec((None,), tf.int32),
    )
    ds = tf.data.Dataset.from_generator(chunks, output_signature=spec).unbatch()
    return ds.apply(tf.data.experimental.assert_cardinality(count))


def _class_names(folders: list[Path]) -> tuple[str, ...]:
    """Names from `map_clsloc.txt` (`<wnid> <1-based id> <name>` lines) if present.

    Without it, `class_names[k]` is the original 1-based id `k + 1` as a string.
    """
    names = [str(k + 1) for k in range(NUM_CLASSES)]
    for folder in folders:
        path = folder / CLASS_MAP_FILE
        if path.is_file():
            for line in path.read_text().splitlines():
                parts = line.split()
                if len(parts) >= 3 and parts[1].isdigit() and 1 <= int(parts[1]) <= NUM_CLASSES:
                    names[int(parts[1]) - 1] = parts[2]
            break
    return tuple(names)
