"""make_input_pipeline on small synthetic data: normalisation, batching, seeding."""

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


def test_eval_pipeline_normalises_exactly_and_keeps_order(splits):
    mean, std = (0.2, 0.4, 0.6), (0.5, 0.25, 0.1)
    ds = make_input_pipeline(splits.test, training=False, batch_size=8, mean=mean, std=std)
    x, y = _arrays(splits.test)
    batches = _run(ds)
    assert [b[0].shape[0] for b in batches] == [8, 8, 4]  # Last partial batch kept.
    assert ds.num_examples == 20 and int(ds.cardinality()) == 3
    # Order is kept by option, not by luck: under load a parallel map reordered batches.
    assert ds.options().deterministic is True
    got = np.concatenate([b[0] for b in batches])
    assert got.dtype == np.float32
    expected = (x / 255.0 - np.array(mean)) / np.array(std)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y)


def test_named_statistics(splits):
    ds = make_input_pipeline(splits.test, training=False, batch_size=20, mean="cifar100")
    x, _ = _arrays(splits.test)
    got = next(iter(ds))[0].numpy()
    cifar_mean = np.array([0.5070751592371323, 0.48654887331495095, 0.4409178433670343])
    cifar_std = np.array([0.2673342858792401, 0.2564384629170883, 0.27615047132568404])
    np.testing.assert_allclose(got, (x / 255.0 - cifar_mean) / cifar_std, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="std must be None"):
        make_input_pipeline(splits.test, training=False, batch_size=4, mean="cifar10", std=(1, 1, 1))
    with pytest.raises(ValueError, match="same length"):
        make_input_pipeline(splits.test, training=False, batch_size=4, mean=(0.5, 0.5, 0.5))


def test_training_without_augmentation_is_a_seeded_shuffle(splits):
    ds = make_input_pipeline(
        splits.train, training=True, batch_size=16, seed=3, augment=False, mean="unit"
    )
    batches = _run(ds)
    assert [b[0].shape for b in batches] == [(16, 8, 8, 3)] * 3  # 50 -> 3 full batches.
    assert int(ds.cardinality()) == 3
    x, y = _arrays(splits.train)
    normalised = np.concatenate([b[0] for b in batches])
    got = np.round((normalised * 0.5 + 0.5) * 255.0).astype(np.uint8)  # Undo "unit" stats.
    originals = {img.tobytes(): label for img, label in zip(x, y)}
    for img, label in zip(got, np.concatenate([b[1] for b in batches])):
        assert originals[img.tobytes()] == label  # Same examples, same labels...
    assert not np.array_equal(np.concatenate([b[1] for b in batches]), y[:48])  # ...shuffled.


def test_same_seed_same_batches_other_seed_or_epoch_differs(splits):
    def pipeline(seed):
        return make_input_pipeline(splits.train, training=True, batch_size=10, seed=seed, mean="unit")

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
            splits.train, training=True, batch_size=5, seed=seed, subset=15, mean="unit"
        )
        assert ds.num_examples == 15 and int(ds.cardinality()) == 3
        return np.sort(np.concatenate([y for _, y in _run(ds)]))

    assert np.bincount(labels(0)).tolist() == [3, 3, 3, 3, 3]
    np.testing.assert_array_equal(labels(0), labels(1))
    known = make_input_pipeline(
        splits.train, training=False, batch_size=15, subset=15, labels=splits.train_labels, mean="unit"
    )
    scanned = make_input_pipeline(splits.train, training=False, batch_size=15, subset=15, mean="unit")
    np.testing.assert_array_equal(_run(known)[0][1], _run(scanned)[0][1])
    with pytest.raises(ValueError, match="deterministic"):
        make_input_pipeline(splits.train, training=True, batch_size=5, subset=5, deterministic=False)
    with pytest.raises(ValueError, match="subset must be in 1..50"):
        make_input_pipeline(splits.train, training=True, batch_size=5, subset=51)


def test_works_inside_keras_fit(splits):
    import keras

    ds = make_input_pipeline(splits.train, training=True, batch_size=10, seed=0, mean="unit")
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(5)])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(ds, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"][0])
    assert isinstance(ds, tf.data.Dataset)
