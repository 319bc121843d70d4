"""make_input_pipeline on small synthetic data: pixel values, batching, seeding."""

import numpy as np
import pytest
import tensorflow as tf

from kdkeras.data import make_input_pipeline, synthetic


@pytest.fixture(scope="module")
def splits():
    return synthetic(num_train=50, num_test=20, num_classes=5, image_shape=(8, 8, 3), seed=0)


def _arrays(ds):
    images, labels = zip(*ds.as_numpy_iterator())
    return np.stack(images), np.array(labels)


def _run(ds):
    return [(x.numpy(), y.numpy()) for x, y in ds]


def test_eval_pipeline_hands_out_the_pixels_and_keeps_order(splits):
    ds = make_input_pipeline(splits.test, training=False, batch_size=8)
    x, y = _arrays(splits.test)
    batches = _run(ds)
    assert [b[0].shape[0] for b in batches] == [8, 8, 4]  # Last partial batch kept.
    assert ds.num_examples == 20 and int(ds.cardinality()) == 3
    # Order is kept by option, not by luck: under load a parallel map reordered batches.
    assert ds.options().deterministic is True
    got = np.concatenate([b[0] for b in batches])
    assert got.dtype == np.float32
    # The uint8 pixels as float32, not normalised: models normalise inside.
    np.testing.assert_array_equal(got, x.astype(np.float32))
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y)


def test_augmented_batches_stay_pixels_in_0_255(splits):
    ds = make_input_pipeline(splits.train, training=True, batch_size=10, seed=0)
    x = np.concatenate([b[0] for b in _run(ds)])
    assert x.dtype == np.float32 and x.min() >= 0.0 and x.max() <= 255.0
    assert x.max() > 200.0  # pixels, not normalised values
    # Reflected borders: no constant fill appears; a constant fill is in pixel units.
    black = make_input_pipeline(splits.train, training=True, batch_size=10, seed=0,
                                fill_mode="constant", fill_value=0.0, rotation=45.0,
                                shift=0.0)
    corners = np.concatenate([b[0] for b in _run(black)])[:, 0, 0, :]
    assert np.any(np.all(corners == 0.0, axis=-1))  # a rotated corner filled black
    with pytest.raises(TypeError, match="mean"):
        make_input_pipeline(splits.test, training=False, batch_size=4, mean="cifar10")


def test_training_without_augmentation_is_a_seeded_shuffle(splits):
    ds = make_input_pipeline(
        splits.train, training=True, batch_size=16, seed=3, augment=False
    )
    batches = _run(ds)
    assert [b[0].shape for b in batches] == [(16, 8, 8, 3)] * 3  # 50 -> 3 full batches.
    assert int(ds.cardinality()) == 3
    x, y = _arrays(splits.train)
    got = np.concatenate([b[0] for b in batches]).astype(np.uint8)  # exact: whole pixels
    originals = {img.tobytes(): label for img, label in zip(x, y)}
    for img, label in zip(got, np.concatenate([b[1] for b in batches])):
        assert originals[img.tobytes()] == label  # Same examples, same labels...
    assert not np.array_equal(np.concatenate([b[1] for b in batches]), y[:48])  # ...shuffled.


def test_same_seed_same_batches_other_seed_or_epoch_differs(splits):
    def pipeline(seed):
        return make_input_pipeline(splits.train, training=True, batch_size=10, seed=seed)

    a, b = pipeline(7), pipeline(7)
    epoch1_a, epoch1_b = _run(a), _run(b)
    for (xa, ya), (xb, yb) in zip(epoch1_a, epoch1_b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    epoch2_a = _run(a)
    assert not np.array_equal(epoch1_a[0][0], epoch2_a[0][0])  # New shuffle and augmentation.
    np.testing.assert_array_equal(epoch2_a[0][0], _run(b)[0][0])  # ...reproducibly.
    assert not np.array_equal(epoch1_a[0][0], _run(pipeline(8))[0][0])


def test_subset_is_balanced_and_independent_of_seed(splits):
    def labels(seed):
        ds = make_input_pipeline(
            splits.train, training=True, batch_size=5, seed=seed, subset=15
        )
        assert ds.num_examples == 15 and int(ds.cardinality()) == 3
        return np.sort(np.concatenate([y for _, y in _run(ds)]))

    assert np.bincount(labels(0)).tolist() == [3, 3, 3, 3, 3]
    np.testing.assert_array_equal(labels(0), labels(1))
    known = make_input_pipeline(
        splits.train, training=False, batch_size=15, subset=15, labels=splits.train_labels
    )
    scanned = make_input_pipeline(splits.train, training=False, batch_size=15, subset=15)
    np.testing.assert_array_equal(_run(known)[0][1], _run(scanned)[0][1])
    with pytest.raises(ValueError, match="deterministic"):
        make_input_pipeline(splits.train, training=True, batch_size=5, subset=5, deterministic=False)
    with pytest.raises(ValueError, match="subset must be in 1..50"):
        make_input_pipeline(splits.train, training=True, batch_size=5, subset=51)


def test_works_inside_keras_fit(splits):
    import keras

    ds = make_input_pipeline(splits.train, training=True, batch_size=10, seed=0)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(5)])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(ds, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"][0])
    assert isinstance(ds, tf.data.Dataset)


# sha256 (first 16 hex) of every batch's float32 pixels and int32 labels, recorded from
# the pipeline before make_input_pipeline was split into its steps: the split (and any
# later change) must hand out the same batches bit for bit, as finished runs saw them.
PINNED_BATCHES = {
    "train_epochs": (dict(training=True, batch_size=16, seed=7, epochs=3, initial_epoch=1),
                     "b8d192f367fe4321"),
    "train_subset_constant": (dict(training=True, batch_size=8, seed=2, subset=30, epochs=2,
                                   fill_mode="constant", rotation=30.0), "57409e22c515e700"),
    "train_no_aug": (dict(training=True, batch_size=16, seed=3, augment=False, epochs=1),
                     "d0c60c11827c4a1d"),
    "eval": (dict(training=False, batch_size=8), "8f464604e2a79ccd"),
}


@pytest.mark.parametrize("case", sorted(PINNED_BATCHES))
def test_batches_are_those_pinned_bit_for_bit(splits, case):
    import hashlib

    options, expected = PINNED_BATCHES[case]
    digest = hashlib.sha256()
    for x, y in make_input_pipeline(splits.test if case == "eval" else splits.train, **options):
        digest.update(x.numpy().tobytes())
        digest.update(y.numpy().astype(np.int32).tobytes())
    assert digest.hexdigest()[:16] == expected
