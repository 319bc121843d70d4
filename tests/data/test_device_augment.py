"""The JAX augmentation on the device against the tf.data path's (`kdkeras.data.augment`).

Same map for the same draws (exact up to float32 round-off), same warp as
TensorFlow's `ImageProjectiveTransformV3` on the same transforms, and the same
distribution of augmented images for different random numbers (two-sample
Kolmogorov–Smirnov tests on the position and orientation of a bar).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow as tf

from kdkeras.data import augment as tf_augment
from kdkeras.data import device_augment
from kdkeras.data.augment_spec import PAPER_AUGMENTATION, AugmentSpec

SEED = tf.constant([3, 4], tf.int64)


def test_every_path_reads_one_definition_of_the_paper_augmentation():
    import inspect

    from kdkeras.data import numpy_data, pipeline

    spec = PAPER_AUGMENTATION
    assert (spec.shift, spec.rotation, spec.flip, spec.fill_mode) == (0.125, 15.0, True, "reflect")
    for fn in (tf_augment.augment_batch, pipeline.make_input_pipeline,
               numpy_data.augmentation_layers):
        defaults = {k: p.default for k, p in inspect.signature(fn).parameters.items()}
        assert defaults["shift"] is spec.shift and defaults["rotation"] is spec.rotation
        assert defaults["flip"] is spec.flip and defaults["fill_mode"] is spec.fill_mode


@pytest.mark.parametrize("size", [(32, 32), (8, 12)])
def test_same_draws_give_the_tf_path_transforms(size):
    h, w = size
    u = tf.random.stateless_uniform((64, 4), seed=SEED, minval=-1.0, maxval=1.0).numpy()
    expected = tf_augment.random_affine_transforms(64, h, w, SEED).numpy()
    got = np.asarray(device_augment.affine_transforms(jnp.asarray(u), h, w))
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("fill_mode", ["reflect", "constant", "nearest", "wrap"])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_warp_is_tensorflows_projective_transform(fill_mode, interpolation):
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (24, 10, 12, 3)).astype(np.float32)
    # Large shifts and rotations reach several reflections/wraps outside the image.
    transforms = tf_augment.random_affine_transforms(24, 10, 12, SEED, shift=1.0,
                                                     rotation=180.0).numpy()
    expected = tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=[10, 12], fill_value=7.0,
        interpolation=interpolation.upper(), fill_mode=fill_mode.upper()).numpy()
    spec = AugmentSpec(fill_mode=fill_mode, fill_value=7.0, interpolation=interpolation)
    got = np.asarray(device_augment.warp(jnp.asarray(images), jnp.asarray(transforms), spec))
    # Nearest sampling can round a coordinate within round-off of .5 the other way.
    mismatch = np.mean(np.abs(got - expected) > 1e-2)
    assert mismatch <= (0.0 if interpolation == "bilinear" else 2e-3), mismatch
    if interpolation == "bilinear":
        np.testing.assert_allclose(got, expected, atol=1e-2)


def _bar_statistics(images):
    """Per image: the centroid (x, y) of the bright pixels and their principal axis angle."""
    h, w = images.shape[1:3]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    mass = images[..., 0].astype(np.float64)
    total = mass.sum(axis=(1, 2))
    cx = (mass * xs).sum(axis=(1, 2)) / total
    cy = (mass * ys).sum(axis=(1, 2)) / total
    dx, dy = xs - cx[:, None, None], ys - cy[:, None, None]
    sxx, syy = (mass * dx * dx).sum(axis=(1, 2)), (mass * dy * dy).sum(axis=(1, 2))
    sxy = (mass * dx * dy).sum(axis=(1, 2))
    angle = 0.5 * np.degrees(np.arctan2(2 * sxy, sxx - syy))
    return {"x": cx, "y": cy, "angle": angle}


def _ks_statistic(a, b):
    grid = np.sort(np.concatenate([a, b]))
    cdf_a = np.searchsorted(np.sort(a), grid, side="right") / len(a)
    cdf_b = np.searchsorted(np.sort(b), grid, side="right") / len(b)
    return float(np.max(np.abs(cdf_a - cdf_b)))


N_IMAGES = 3000
# Two-sample KS critical value at α = 0.001 for n = m = 3000: 1.95·sqrt(2/n).
KS_LIMIT = 1.95 * np.sqrt(2.0 / N_IMAGES)


def _bar_image():
    # A horizontal bar left of and above the centre: flips move it right, shifts
    # move it, rotations tilt it.
    image = np.zeros((32, 32, 3), np.float32)
    image[10:12, 4:14] = 255.0
    return image


def test_augmented_images_are_distributed_as_on_the_tf_path():
    images = np.repeat(_bar_image()[None], N_IMAGES, axis=0)
    from_tf = _bar_statistics(tf_augment.augment_batch(tf.constant(images), SEED).numpy())
    from_jax = _bar_statistics(np.asarray(jax.jit(device_augment.augment_batch)(
        jnp.asarray(images), jax.random.key(0))))
    for name in ("x", "y", "angle"):
        assert _ks_statistic(from_tf[name], from_jax[name]) < KS_LIMIT, name
    # And the statistics see the augmentation: about half flipped, tilts of up to ±15°.
    flipped = np.mean(from_jax["x"] > 15.5)
    assert 0.45 < flipped < 0.55
    assert 14.0 < np.max(np.abs(from_jax["angle"])) <= 15.5


def test_a_different_rotation_range_is_detected():
    # The KS check above can fail: a 10° range against the tf path's 15° does.
    images = np.repeat(_bar_image()[None], N_IMAGES, axis=0)
    from_tf = _bar_statistics(tf_augment.augment_batch(tf.constant(images), SEED).numpy())
    spec = AugmentSpec(rotation=10.0)
    from_jax = _bar_statistics(np.asarray(device_augment.augment_batch(
        jnp.asarray(images), jax.random.key(0), spec)))
    assert _ks_statistic(from_tf["angle"], from_jax["angle"]) > KS_LIMIT


def test_same_key_same_output_and_identity_spec():
    images = jnp.asarray(np.random.default_rng(1).uniform(0, 255, (4, 8, 8, 3)), jnp.float32)
    a = device_augment.augment_batch(images, jax.random.key(5))
    b = device_augment.augment_batch(images, jax.random.key(5))
    c = device_augment.augment_batch(images, jax.random.key(6))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(c))
    same = device_augment.augment_batch(images, jax.random.key(5),
                                        AugmentSpec(shift=0, rotation=0, flip=False))
    np.testing.assert_array_equal(np.asarray(same), np.asarray(images))


def test_bad_spec_is_refused():
    with pytest.raises(ValueError, match="fill_mode"):
        AugmentSpec(fill_mode="mirror")
    with pytest.raises(ValueError, match="interpolation"):
        AugmentSpec(interpolation="cubic")


def test_device_batches_cover_each_example_once_per_epoch_with_its_label():
    from kdkeras.data.device_batches import DeviceBatches, to_device

    n, batch = 20, 6   # 3 steps an epoch; the last 2 examples of each order are dropped
    pixels = np.arange(n, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    images, labels = to_device(pixels, np.arange(n) + 100)
    batches = DeviceBatches(n, batch, augment=None, stats=None)
    assert batches.steps_per_epoch == 3
    seen = []
    order = batches.epoch_order(7, 0)
    for step in range(3):
        x, y = batches.batch(images, labels, order, 7, 0, step)
        index = np.asarray(x)[:, 0, 0, 0].astype(int)
        np.testing.assert_array_equal(np.asarray(y), index + 100)   # labels follow images
        seen += list(index)
    assert len(set(seen)) == 18
    # Another epoch or seed, another order; the same (seed, epoch), the same one.
    assert not np.array_equal(np.asarray(order), np.asarray(batches.epoch_order(7, 1)))
    assert not np.array_equal(np.asarray(order), np.asarray(batches.epoch_order(8, 0)))
    np.testing.assert_array_equal(np.asarray(order), np.asarray(batches.epoch_order(7, 0)))


def test_model_inputs_normalise_in_one_place():
    from kdkeras.data.device_batches import DeviceBatches, model_inputs, to_device

    x = jnp.full((1, 1, 1, 3), 255.0)
    got = np.asarray(model_inputs(x, ((0.5, 0.25, 0.0), (0.5, 0.25, 1.0))))
    np.testing.assert_allclose(got.ravel(), [1.0, 3.0, 1.0], rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(model_inputs(x, None)), np.asarray(x))
    with pytest.raises(ValueError, match="uint8"):
        to_device(np.zeros((2, 4, 4, 3), np.float32), np.zeros(2))
    with pytest.raises(ValueError, match="batch_size"):
        DeviceBatches(4, 5)
