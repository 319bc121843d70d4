"""Datasets and input pipelines.

    splits = load_dataset("cifar100", data_dir="~/data")          # DatasetSplits
    train = make_input_pipeline(splits.train, training=True, batch_size=128, seed=0,
                                mean=splits.mean, std=splits.std)
    test = make_input_pipeline(splits.test, training=False, batch_size=256,
                               mean=splits.mean, std=splits.std)

`load_dataset` returns unbatched `(uint8 HxWx3 image, int32 label)` datasets;
`make_input_pipeline` subsets, shuffles, batches, augments (shift, rotation,
flip) and normalises them. `synthetic(...)` gives small learnable random data
for tests.
"""

from kdkeras.data.augment import augment_batch, random_affine_transforms
from kdkeras.data.cifar100 import load_cifar100, load_cifar100_python
from kdkeras.data.errors import (
    ChecksumError,
    DataDownloadError,
    DataError,
    DataFormatError,
    DataNotFoundError,
    UnknownDatasetError,
)
from kdkeras.data.image_folder import default_cifar10_jpeg_dir, load_image_folder
from kdkeras.data.imagenet64 import load_imagenet64
from kdkeras.data.pipeline import make_input_pipeline
from kdkeras.data.registry import dataset_names, load_dataset
from kdkeras.data.splits import NORMALIZATION, DatasetSplits, normalization_stats
from kdkeras.data.subset import select_subset, take_subset
from kdkeras.data.synthetic import synthetic

__all__ = [
    "NORMALIZATION",
    "ChecksumError",
    "DataDownloadError",
    "DataError",
    "DataFormatError",
    "DataNotFoundError",
    "DatasetSplits",
    "UnknownDatasetError",
    "augment_batch",
    "dataset_names",
    "default_cifar10_jpeg_dir",
    "load_cifar100",
    "load_cifar100_python",
    "load_dataset",
    "load_image_folder",
    "load_imagenet64",
    "make_input_pipeline",
    "normalization_stats",
    "random_affine_transforms",
    "select_subset",
    "synthetic",
    "take_subset",
]
