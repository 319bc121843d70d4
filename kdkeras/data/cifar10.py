"""CIFAR-10 (Krizhevsky 2009) through tensorflow-datasets: 50,000 / 10,000 32x32 images, 10 classes.

The dataset of the committed full-data ResNet-32 teachers
(`results/cifar10-jpeg/teachers-full`, trained on the CIFAR-10 JPEG copy), so the
main job (`experiments/main.py`) runs with them where that copy is absent. The
`cifar10` builder downloads the python release once (the only network use) into
`data_dir` (default: `$TFDS_DATA_DIR` or `~/tensorflow_datasets`); both splits
are then read into memory (uint8, about 180 MB). Labels are in the order of the
image folder's sorted class names (airplane, automobile, bird, ... truck).
"""

from __future__ import annotations

import os
import socket

from kdkeras.data.errors import DataDownloadError
from kdkeras.data.splits import DatasetSplits, splits_from_arrays

TFDS_NAME = "cifar10"
NUM_CLASSES = 10


def load_cifar10(data_dir: str | os.PathLike | None = None, *,
                 download: bool = True) -> DatasetSplits:
    """CIFAR-10 as `DatasetSplits` (CIFAR-10 normalisation statistics), prepared by tfds.

    Raises:
      DataDownloadError: the dataset is not prepared in `data_dir` and could not be
        downloaded (no network, or `download=False`).
    """
    import requests
    import tensorflow_datasets as tfds

    builder = tfds.builder(TFDS_NAME, data_dir=None if data_dir is None else os.fspath(data_dir))
    where = builder.data_dir
    if not builder.is_prepared():
        if not download:
            raise DataDownloadError(f"CIFAR-10 is not prepared in {where} and download=False.")
        try:
            builder.download_and_prepare()
        except (requests.exceptions.RequestException, ConnectionError, TimeoutError,
                socket.error) as e:
            raise DataDownloadError(
                f"Downloading CIFAR-10 through tensorflow-datasets into {where} failed "
                f"({type(e).__name__}: {' '.join(str(e).split())[:200]}). Run once on a machine "
                "with internet and copy the folder, or pass --data_dir=an image folder "
                "(<split>/<class>/<image>).") from None
    arrays = {split: _read_split(builder, split) for split in ("train", "test")}
    return splits_from_arrays(
        "cifar10", arrays["train"], arrays["test"], num_classes=NUM_CLASSES,
        class_names=builder.info.features["label"].names,
        source=f"tfds {TFDS_NAME} in {where} (cached in memory)", stats="cifar10")


def _read_split(builder, split: str):
    """(images, labels) of a split as numpy arrays, read in chunks (no total size needed)."""
    import numpy as np
    import tensorflow_datasets as tfds

    images, labels = [], []
    for x, y in tfds.as_numpy(builder.as_dataset(split=split, as_supervised=True).batch(5000)):
        images.append(x)
        labels.append(y)
    return np.concatenate(images), np.concatenate(labels).astype(np.int32)
