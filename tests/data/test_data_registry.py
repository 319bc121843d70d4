"""load_dataset's registry and the synthetic dataset other modules' smoke tests use."""

import numpy as np
import pytest

from kdkeras.data import (
    DataError,
    DatasetSplits,
    UnknownDatasetError,
    dataset_names,
    load_dataset,
    synthetic,
)


def test_names_and_unknown_name_lists_them():
    assert dataset_names() == ["cifar10", "cifar100", "cifar10_jpeg", "image_folder", "imagenet64", "synthetic"]
    with pytest.raises(UnknownDatasetError) as info:
        load_dataset("cifar-1000")
    message = str(info.value)
    assert "'cifar-1000'" in message and all(name in message for name in dataset_names())
    assert isinstance(info.value, DataError) and isinstance(info.value, ValueError)
    assert "\n" not in message


def test_synthetic_splits_shapes_and_determinism():
    splits = load_dataset("synthetic", num_train=40, num_test=10, num_classes=4, image_shape=(6, 10, 3), seed=5)
    assert isinstance(splits, DatasetSplits)
    assert (splits.name, splits.num_train, splits.num_test, splits.num_classes) == ("synthetic", 40, 10, 4)
    assert splits.image_shape == (6, 10, 3) and splits.class_names == ("class_0", "class_1", "class_2", "class_3")
    image, label = next(splits.train.as_numpy_iterator())
    assert image.dtype == np.uint8 and image.shape == (6, 10, 3) and label.dtype == np.int32
    assert np.bincount(splits.train_labels).tolist() == [10, 10, 10, 10]
    same = synthetic(40, 10, 4, (6, 10, 3), seed=5)
    other = synthetic(40, 10, 4, (6, 10, 3), seed=6)
    first = np.stack([x for x, _ in splits.train.as_numpy_iterator()])
    np.testing.assert_array_equal(first, np.stack([x for x, _ in same.train.as_numpy_iterator()]))
    assert not np.array_equal(first, np.stack([x for x, _ in other.train.as_numpy_iterator()]))


def test_synthetic_labels_are_learnable():
    splits = synthetic(num_train=200, num_test=100, num_classes=10, image_shape=(8, 8, 3), seed=0)
    x_train, y_train = (np.stack(a) for a in zip(*splits.train.as_numpy_iterator()))
    x_test, y_test = (np.stack(a) for a in zip(*splits.test.as_numpy_iterator()))
    centroids = np.stack([x_train[y_train == k].mean(axis=0) for k in range(10)]).reshape(10, -1)
    distances = ((x_test.reshape(len(x_test), 1, -1) - centroids[None]) ** 2).sum(-1)
    accuracy = np.mean(distances.argmin(axis=1) == y_test)
    assert accuracy > 0.9  # A nearest-centroid classifier; chance is 0.1.
