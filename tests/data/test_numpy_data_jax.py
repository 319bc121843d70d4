"""The TensorFlow-free data path (`kdkeras.data.numpy_data`), on any backend.

Part of the main (TensorFlow) suite and of the JAX suite that
`tests/distill/test_jax_backend.py` starts.
"""

import tarfile

import keras
import numpy as np
import pytest
from PIL import Image

from kdkeras.data.errors import DataFormatError, DataNotFoundError
from kdkeras.data.numpy_data import ArrayBatches, augmentation_layers, load_image_arrays

CLASSES = ("dog", "cat", "frog")  # written out of order: labels follow sorted names


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    pixels = {}
    for split, per_class in (("train", 4), ("test", 2)):
        for c in CLASSES:
            (root / split / c).mkdir(parents=True)
            for i in range(per_class):
                image = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
                Image.fromarray(image).save(root / split / c / f"{i:04d}.png")
                pixels[(split, c, i)] = image
    return root, pixels


def test_folder_decodes_to_sorted_labels_and_exact_pixels(folder):
    root, pixels = folder
    data = load_image_arrays(root, name="tiny")
    assert data.class_names == ("cat", "dog", "frog")
    assert data.x_train.shape == (12, 6, 6, 3) and data.x_train.dtype == np.uint8
    assert data.y_train.dtype == np.int32 and data.num_test == 6
    # Files are read in (class, name) order: PNG is lossless, so pixels are exact.
    np.testing.assert_array_equal(data.x_train[4], pixels[("train", "dog", 0)])
    assert list(data.y_train) == [0] * 4 + [1] * 4 + [2] * 4
    all_train = np.stack([pixels[("train", c, i)] for c in sorted(CLASSES) for i in range(4)])
    np.testing.assert_allclose(data.mean, (all_train / 255.0).mean(axis=(0, 1, 2)), rtol=1e-6)


def test_tar_with_a_top_folder_and_the_npz_cache_give_the_same_arrays(folder, tmp_path):
    root, _ = folder
    archive = tmp_path / "images.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root, arcname="cifar-like")
    direct = load_image_arrays(root)
    first = load_image_arrays(archive, cache=tmp_path / "c.npz")
    cached = load_image_arrays(tmp_path / "missing.tar", cache=tmp_path / "c.npz")
    for data in (first, cached):
        np.testing.assert_array_equal(data.x_train, direct.x_train)
        np.testing.assert_array_equal(data.y_test, direct.y_test)
        assert data.class_names == direct.class_names
    assert "cached" in cached.source


def test_missing_source_or_split_is_a_clear_error(folder, tmp_path):
    with pytest.raises(DataNotFoundError, match="No image folder or tar"):
        load_image_arrays(tmp_path / "nowhere")
    root, _ = folder
    with pytest.raises(DataFormatError, match="No 'val' images"):
        load_image_arrays(root, test_split="val")


def test_batches_shuffle_per_epoch_drop_the_rest_and_hand_out_pixels(folder):
    root, _ = folder
    data = load_image_arrays(root)
    train = ArrayBatches(data.x_train, data.y_train, batch_size=5, training=True, seed=3,
                         augment=False)
    assert len(train) == 2  # 12 // 5, the partial batch dropped
    x, y = train[0]
    x = keras.ops.convert_to_numpy(x)
    rows = train._order[:5]
    assert x.dtype == np.float32  # the uint8 pixels, exactly: models normalise inside
    np.testing.assert_array_equal(x, data.x_train[rows].astype(np.float32))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(y), data.y_train[rows])
    order = train._order.copy()
    train.on_epoch_end()
    assert not np.array_equal(order, train._order)
    test = ArrayBatches(data.x_test, data.y_test, batch_size=4, training=False)
    assert [tuple(test[i][0].shape) for i in range(len(test))] == [(4, 6, 6, 3), (2, 6, 6, 3)]
    subset = ArrayBatches(data.x_train, data.y_train, batch_size=3, training=True, subset=6)
    assert sorted(np.bincount(subset.labels)) == [2, 2, 2]


def _augment_only(images, seed, **options):
    layer = augmentation_layers(seed=seed, **options)
    return keras.ops.convert_to_numpy(layer(images.astype("float32"), training=True))


def test_flip_alone_mirrors_some_images_and_leaves_the_others():
    images = np.random.default_rng(0).integers(0, 256, (16, 6, 6, 3)).astype("float32")
    out = _augment_only(images, 0, shift=0, rotation=0, flip=True)
    same = [np.array_equal(o, i) for o, i in zip(out, images)]
    mirrored = [np.array_equal(o, i[:, ::-1]) for o, i in zip(out, images)]
    assert all(s or m for s, m in zip(same, mirrored)) and any(same) and any(mirrored)


def test_shift_alone_moves_whole_pixels_with_reflected_borders():
    images = np.random.default_rng(1).integers(0, 256, (8, 8, 8, 3)).astype("float32")
    out = _augment_only(images, 1, shift=0.25, rotation=0, flip=False)  # up to 2 px of 8
    # Keras "reflect" is (d c b a | a b c d | d c b a): numpy's "symmetric".
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="symmetric")
    for o, p in zip(out, padded):
        crops = [p[2 + dy:10 + dy, 2 + dx:10 + dx] for dy in range(-2, 3) for dx in range(-2, 3)]
        assert any(np.allclose(o, c) for c in crops)


def test_augmentation_is_seeded():
    images = np.random.default_rng(2).integers(0, 256, (4, 6, 6, 3)).astype(np.uint8)
    labels = np.zeros(4, np.int32)

    def first_batch(seed):
        batches = ArrayBatches(images, labels, batch_size=4, training=True, seed=seed)
        return keras.ops.convert_to_numpy(batches[0][0])

    np.testing.assert_array_equal(first_batch(5), first_batch(5))
    assert not np.allclose(first_batch(5), first_batch(6))
    # Augmented pixels stay pixels: bilinear rotation and reflected borders keep [0, 255].
    x = first_batch(5)
    assert x.dtype == np.float32 and x.min() >= 0.0 and x.max() <= 255.0 and x.max() > 200.0


def test_a_resumed_epoch_sees_the_batches_of_the_uninterrupted_run():
    images = np.random.default_rng(3).integers(0, 256, (8, 6, 6, 3)).astype(np.uint8)
    labels = np.arange(8, dtype=np.int32) % 2

    def batches(**kwargs):
        return ArrayBatches(images, labels, batch_size=4, training=True, seed=7, **kwargs)

    def as_numpy(batch):
        return [keras.ops.convert_to_numpy(t) for t in batch]

    uninterrupted = batches()
    uninterrupted.on_epoch_end()  # now at epoch 1
    resumed = batches(initial_epoch=1)
    # Batch order of the requests does not matter: batch i depends on (seed, epoch, i).
    late_first = [as_numpy(resumed[1]), as_numpy(resumed[0])][::-1]
    for (x, y), (x2, y2) in zip([as_numpy(uninterrupted[i]) for i in range(2)], late_first):
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(as_numpy(batches()[0])[0], as_numpy(resumed[0])[0])
