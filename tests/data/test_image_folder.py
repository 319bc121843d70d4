"""Image folders: a generated one (exact pixels) and the real CIFAR-10 JPEG copy."""

import os
from pathlib import Path

import numpy as np
import pytest

from kdkeras.data import (
    DataFormatError,
    DataNotFoundError,
    default_cifar10_jpeg_dir,
    load_dataset,
    make_input_pipeline,
)

# In the workplace and in CI, `shared/` sits beside the repository checkout.
REPO_ROOT = Path(__file__).resolve().parents[2]
CIFAR10_JPEG = Path(
    os.environ.get("KDKERAS_CIFAR10_JPEG") or REPO_ROOT / ".." / "shared" / "data" / "cifar10-jpeg"
).resolve()
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
needs_cifar10_jpeg = pytest.mark.skipif(
    not CIFAR10_JPEG.is_dir(), reason=f"CIFAR-10 JPEG copy not found at {CIFAR10_JPEG}"
)


@pytest.mark.parametrize("cache", [True, False])
def test_generated_folder_round_trips(small_image_folder, cache):
    splits = load_dataset("image_folder", data_dir=small_image_folder["dir"], cache=cache)
    assert splits.class_names == ("ant", "bee", "cat")  # Sorted folder names.
    assert (splits.num_train, splits.num_test, splits.num_classes) == (12, 6, 3)
    assert splits.image_shape == (8, 8, 3)
    for split in ("train", "test"):
        examples = list(getattr(splits, split).as_numpy_iterator())
        assert len(examples) == getattr(splits, f"num_{split}")
        for image, label in examples:
            assert image.dtype == np.uint8 and image.shape == (8, 8, 3)
            # PNG is lossless: each image is exactly one of the written ones, in its class.
            assert splits.class_names[label] == small_image_folder["images"][(split, image.tobytes())]
    assert (splits.train_labels is not None) == cache
    if cache:
        assert np.bincount(splits.train_labels).tolist() == [4, 4, 4]
        # Default stats of a cached folder: its own training images' per-channel mean/std.
        pixels = np.stack([image for image, _ in splits.train.as_numpy_iterator()]) / 255.0
        np.testing.assert_allclose(splits.mean, pixels.mean(axis=(0, 1, 2)), rtol=1e-9)
        np.testing.assert_allclose(splits.std, pixels.std(axis=(0, 1, 2)), rtol=1e-9)
    else:
        assert splits.mean == (0.485, 0.456, 0.406)  # ImageNet's, as nothing was read.


def test_resizing_and_missing_split(small_image_folder, tmp_path):
    splits = load_dataset("image_folder", data_dir=small_image_folder["dir"], image_size=(4, 6), cache=False)
    assert splits.image_shape == (4, 6, 3)
    image, _ = next(splits.test.as_numpy_iterator())
    assert image.shape == (4, 6, 3) and image.dtype == np.uint8
    with pytest.raises(DataFormatError, match="no 'val' split"):
        load_dataset("image_folder", data_dir=small_image_folder["dir"], test_split="val")


def test_missing_folder_errors_name_the_path(tmp_path, monkeypatch):
    missing = tmp_path / "no-such-folder"
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("image_folder", data_dir=missing)
    assert str(missing) in str(info.value) and "<class>" in str(info.value)
    with pytest.raises(DataNotFoundError, match="needs data_dir"):
        load_dataset("image_folder")
    monkeypatch.setenv("KDKERAS_CIFAR10_JPEG", str(missing))
    assert default_cifar10_jpeg_dir() == missing
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("cifar10_jpeg")
    assert str(missing) in str(info.value) and "KDKERAS_CIFAR10_JPEG" in str(info.value)


def test_default_location_is_shared_beside_the_repo(monkeypatch):
    monkeypatch.delenv("KDKERAS_CIFAR10_JPEG", raising=False)
    expected = (REPO_ROOT / ".." / "shared" / "data" / "cifar10-jpeg").resolve()
    assert default_cifar10_jpeg_dir() == expected


@needs_cifar10_jpeg
def test_real_cifar10_jpeg_counts_and_classes():
    # Per-class counts from the listing (decoding 60,000 JPEGs would take ~10 s).
    for split, per_class in (("train", 5000), ("test", 1000)):
        folders = sorted(p.name for p in (CIFAR10_JPEG / split).iterdir() if p.is_dir())
        assert tuple(folders) == CIFAR10_CLASSES
        for name in folders:
            with os.scandir(CIFAR10_JPEG / split / name) as entries:
                assert sum(e.name.endswith(".jpg") for e in entries) == per_class, (split, name)

    splits = load_dataset("cifar10_jpeg", data_dir=CIFAR10_JPEG, cache=False)
    assert (splits.num_train, splits.num_test) == (50000, 10000)
    assert int(splits.train.cardinality()) == 50000 and int(splits.test.cardinality()) == 10000
    assert splits.class_names == CIFAR10_CLASSES and splits.num_classes == 10
    assert splits.image_shape == (32, 32, 3)
    assert splits.mean == pytest.approx((0.4914, 0.4822, 0.4465), abs=1e-4)  # CIFAR-10's.
    examples = list(splits.train.take(8).as_numpy_iterator())
    for image, label in examples:
        assert image.shape == (32, 32, 3) and image.dtype == np.uint8
        assert 0 <= label < 10
    assert len({int(label) for _, label in examples}) > 1  # The file order mixes classes.
    assert np.std(np.stack([image for image, _ in examples])) > 20  # Real pictures.


@pytest.fixture(scope="module")
def real_test_sample():
    """The first 600 images of the real test split, streamed (not the whole folder)."""
    if not CIFAR10_JPEG.is_dir():
        pytest.skip(f"CIFAR-10 JPEG copy not found at {CIFAR10_JPEG}")
    splits = load_dataset("cifar10_jpeg", data_dir=CIFAR10_JPEG, cache=False)
    return splits, splits.test.take(600)


def test_real_pipeline_augments_deterministically(real_test_sample):
    splits, sample = real_test_sample

    def batches(seed):
        ds = make_input_pipeline(
            sample, training=True, batch_size=32, seed=seed, subset=100,
        )
        assert ds.num_examples == 100 and int(ds.cardinality()) == 3
        return [(x.numpy(), y.numpy()) for x, y in ds]

    first, again, other = batches(0), batches(0), batches(1)
    assert [x.shape for x, _ in first] == [(32, 32, 32, 3)] * 3
    assert first[0][0].dtype == np.float32 and first[0][1].dtype == np.int32
    for (x1, y1), (x2, y2) in zip(first, again):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(first[0][0], other[0][0])
    # Pixels in [0, 255], not normalised (models normalise): a real photo's spread.
    pixels = np.concatenate([x for x, _ in first])
    assert pixels.min() >= 0.0 and pixels.max() <= 255.0
    assert 90 < pixels.mean() < 160 and 40 < pixels.std() < 80


def test_real_subset_is_class_balanced(real_test_sample):
    splits, sample = real_test_sample
    ds = make_input_pipeline(sample, training=False, batch_size=64, subset=50)
    labels = np.concatenate([y.numpy() for _, y in ds])
    assert ds.num_examples == 50 and len(labels) == 50
    assert np.bincount(labels, minlength=10).tolist() == [5] * 10
