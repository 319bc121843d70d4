"""ImageNet64 npz release (Chrabaszcz et al. 2017) on generated files."""

import numpy as np
import pytest

from kdkeras.data import DataFormatError, DataNotFoundError, load_dataset, make_input_pipeline


def _read(ds):
    images, labels = zip(*ds.as_numpy_iterator())
    return np.stack(images), np.array(labels)


def test_directory_layout_counts_labels_and_pixels(imagenet64_dir):
    splits = load_dataset("imagenet64", data_dir=imagenet64_dir["dir"])
    assert (splits.num_train, splits.num_test) == (6, 4)
    assert (splits.num_classes, splits.image_shape) == (1000, (64, 64, 3))
    assert splits.class_names[0] == "1"  # No map_clsloc.txt: the original 1-based id.
    assert "[1, 2, 10]" in splits.source  # Batches in numeric, not string, order.

    images, labels = _read(splits.train)
    raw = imagenet64_dir["train"]
    data = np.concatenate([raw[k][0] for k in (1, 2, 10)])
    np.testing.assert_array_equal(labels, np.concatenate([raw[k][1] for k in (1, 2, 10)]) - 1)
    np.testing.assert_array_equal(splits.train_labels, labels)
    # Pixel (y=10, x=20) of image 4: R at 10*64+20, G one plane (4096) later, B two.
    offset = 10 * 64 + 20
    assert tuple(images[4, 10, 20]) == tuple(data[4, [offset, 4096 + offset, 8192 + offset]])
    np.testing.assert_array_equal(images, data.reshape(-1, 3, 64, 64).transpose(0, 2, 3, 1))

    val_images, val_labels = _read(splits.test)
    np.testing.assert_array_equal(val_labels, [0, 999, 499, 1])
    assert val_images.dtype == np.uint8 and val_images.shape == (4, 64, 64, 3)
    assert int(splits.train.cardinality()) == 6


def test_flat_files_and_class_map(tmp_path, imagenet64_dir, npz_writer):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (2, 12288), dtype=np.uint8)
    npz_writer(tmp_path / "train_data_batch_1.npz", data, np.array([3, 1]))
    npz_writer(tmp_path / "val_data.npz", data, np.array([2, 2]))
    (tmp_path / "map_clsloc.txt").write_text("n01 1 kit_fox\nn02 2 English_setter\nn03 3 Siberian_husky\n")
    splits = load_dataset("imagenet64", data_dir=tmp_path)
    assert splits.class_names[:3] == ("kit_fox", "English_setter", "Siberian_husky")
    assert list(_read(splits.train)[1]) == [2, 0]


def test_pipeline_subset_uses_known_labels(imagenet64_dir):
    splits = load_dataset("imagenet64", data_dir=imagenet64_dir["dir"])
    ds = make_input_pipeline(
        splits.train, training=True, batch_size=2, seed=0, subset=4,
        labels=splits.train_labels,
    )
    assert ds.num_examples == 4
    shapes = [x.shape for x, _ in ds]
    assert shapes == [(2, 64, 64, 3)] * 2


def test_wrong_image_size_is_reported(tmp_path, npz_writer):
    npz_writer(tmp_path / "train_data_batch_1.npz", np.zeros((2, 3072), np.uint8), np.array([1, 2]))
    npz_writer(tmp_path / "val_data.npz", np.zeros((2, 12288), np.uint8), np.array([1, 2]))
    with pytest.raises(DataFormatError) as info:
        load_dataset("imagenet64", data_dir=tmp_path)
    message = str(info.value)
    assert "train_data_batch_1.npz" in message and "(N, 12288)" in message and "(2, 3072)" in message


@pytest.mark.parametrize(
    "labels, expected",
    [([0, 999], r"1\.\.1000, got 0\.\.999 \(they look 0-based"), ([5, 1001], r"got 5\.\.1001")],
)
def test_labels_outside_1_to_1000_are_reported(tmp_path, npz_writer, labels, expected):
    npz_writer(tmp_path / "train_data_batch_1.npz", np.zeros((2, 12288), np.uint8), np.array([1, 2]))
    npz_writer(tmp_path / "val_data.npz", np.zeros((2, 12288), np.uint8), np.array(labels))
    with pytest.raises(DataFormatError, match=expected):
        load_dataset("imagenet64", data_dir=tmp_path)


def test_label_count_and_missing_array_are_reported(tmp_path, npz_writer):
    npz_writer(tmp_path / "train_data_batch_1.npz", np.zeros((2, 12288), np.uint8), np.array([1, 2, 3]))
    np.savez(tmp_path / "val_data.npz", images=np.zeros((2, 12288), np.uint8))
    with pytest.raises(DataFormatError, match=r"labels have shape \(3,\), expected \(2,\)"):
        load_dataset("imagenet64", data_dir=tmp_path)
    npz_writer(tmp_path / "train_data_batch_1.npz", np.zeros((2, 12288), np.uint8), np.array([1, 2]))
    with pytest.raises(DataFormatError, match=r"val_data.npz has no 'data' array"):
        load_dataset("imagenet64", data_dir=tmp_path)


def test_missing_folder_and_files_name_the_path(tmp_path):
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("imagenet64", data_dir=tmp_path / "absent")
    assert str(tmp_path / "absent") in str(info.value) and "Imagenet64_train_npz" in str(info.value)
    with pytest.raises(DataNotFoundError, match="No ImageNet64 training files"):
        load_dataset("imagenet64", data_dir=tmp_path)
    with pytest.raises(DataNotFoundError, match="needs data_dir"):
        load_dataset("imagenet64")
