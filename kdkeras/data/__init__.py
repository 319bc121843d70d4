"""Datasets and input pipelines.

    splits = load_dataset("cifar100", data_dir="~/data")          # DatasetSplits
    train = make_input_pipeline(splits.train, training=True, batch_size=128, seed=0)
    test = make_input_pipeline(splits.test, training=False, batch_size=256)
    model = kdkeras.models.get("resnet8", num_classes=splits.num_classes,
                               input_normalization=(splits.mean, splits.std))

`load_dataset` returns unbatched `(uint8 HxWx3 image, int32 label)` datasets;
`make_input_pipeline` subsets, shuffles, batches and augments (shift, rotation,
flip) them into float32 pixels in [0, 255]; models normalise inside, with the
training images' statistics (`splits.mean`, `splits.std`). `synthetic(...)` gives small learnable random data
for tests.

The tf.data loaders import TensorFlow when first used; `kdkeras.data.numpy_data`
(the Pillow + numpy path of the JAX backend) never does.
"""

import importlib

# Modules that need no TensorFlow are imported now. (`synthetic` must be: the
# submodule and its function share a name, and a lazy import would leave the
# package attribute bound to the module.)
from kdkeras.data.errors import (
    ChecksumError,
    DataDownloadError,
    DataError,
    DataFormatError,
    DataNotFoundError,
    UnknownDatasetError,
)
from kdkeras.data.splits import NORMALIZATION, DatasetSplits, normalization_stats
from kdkeras.data.subset import select_subset, take_subset
from kdkeras.data.synthetic import synthetic

# The tf.data loaders: name -> submodule, imported on first use (PEP 562), so
# that kdkeras.data.numpy_data (the JAX backend's data path) imports without
# TensorFlow.
_LAZY = {
    "augment_batch": "augment",
    "random_affine_transforms": "augment",
    "load_cifar10": "cifar10",
    "load_cifar100": "cifar100",
    "load_cifar100_python": "cifar100",
    "default_cifar10_jpeg_dir": "image_folder",
    "load_image_folder": "image_folder",
    "load_imagenet64": "imagenet64",
    "make_input_pipeline": "pipeline",
    "dataset_names": "registry",
    "load_dataset": "registry",
}

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
    "load_cifar10",
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


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
