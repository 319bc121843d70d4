"""Batch augmentation: exact flips and shifts, rotation geometry, seeding."""

import numpy as np
import pytest
import tensorflow as tf

from kdkeras.data import augment_batch, random_affine_transforms

SEED = tf.constant([3, 4], tf.int64)


def _images(batch=16, size=8, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (batch, size, size, 3)).astype(np.float32)


def test_flip_only_is_exact():
    x = _images(32)
    y = augment_batch(tf.constant(x), SEED, shift=0, rotation=0, flip=True).numpy()
    flipped = [np.array_equal(yi, xi[:, ::-1]) for xi, yi in zip(x, y)]
    kept = [np.array_equal(yi, xi) for xi, yi in zip(x, y)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 4 < sum(flipped) < 28  # About half.


def _shifted(image, dx, dy):
    """`image` moved right by dx and down by dy, zeros where nothing was."""
    out = np.zeros_like(image)
    h, w = image.shape[:2]
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = image[
        max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def test_shift_only_moves_whole_pixels_within_range():
    x = _images(16, size=16)
    y = augment_batch(
        tf.constant(x), SEED, shift=0.25, rotation=0, flip=False, fill_mode="constant"
    ).numpy()
    found = []
    for xi, yi in zip(x, y):
        matches = [
            (dx, dy)
            for dx in range(-4, 5)
            for dy in range(-4, 5)
            if np.allclose(yi, _shifted(xi, dx, dy), atol=1e-3)
        ]
        assert matches, "every output is the input shifted by at most 0.25 * 16 = 4 px"
        found.append(matches[0])
    assert len(set(found)) > 4


def test_rotation_keeps_centre_and_area():
    t = random_affine_transforms(64, 32, 32, SEED, shift=0.0, rotation=15.0, flip=True).numpy()
    a0, a1, a2, b0, b1, b2, c0, c1 = t.T
    np.testing.assert_allclose(np.abs(a0 * b1 - a1 * b0), 1.0, atol=1e-5)  # Rigid.
    np.testing.assert_allclose(a0 * 15.5 + a1 * 15.5 + a2, 15.5, atol=1e-4)  # Centre -> centre.
    np.testing.assert_allclose(b0 * 15.5 + b1 * 15.5 + b2, 15.5, atol=1e-4)
    angles = np.degrees(np.arctan2(np.abs(a1), np.abs(b1)))
    assert angles.max() <= 15.0 + 1e-3 and angles.max() > 10.0
    assert np.all(c0 == 0) and np.all(c1 == 0)


def test_constant_image_stays_constant_under_reflect_fill():
    x = np.full((4, 16, 16, 3), 77.0, np.float32)
    y = augment_batch(tf.constant(x), SEED, shift=0.125, rotation=15.0).numpy()
    np.testing.assert_allclose(y, 77.0, atol=1e-3)


def test_seeding_shape_and_dtype():
    x = tf.constant(_images(8, size=32))
    a = augment_batch(x, SEED)
    b = augment_batch(x, SEED)
    c = augment_batch(x, tf.constant([3, 5], tf.int64))
    assert a.shape == x.shape and a.dtype == tf.float32
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.array_equal(a.numpy(), c.numpy())


def test_bad_fill_mode_is_refused():
    with pytest.raises(ValueError, match="fill_mode"):
        augment_batch(tf.zeros((1, 4, 4, 3)), SEED, fill_mode="mirror")


@pytest.mark.parametrize("rotation", [0.0, 20.0])
def test_the_numpy_path_is_this_warp_but_on_the_border_a_rotated_shift_brings_in(rotation):
    # kdkeras.data.numpy_data's documented difference: its Keras layers, given this path's
    # draws (flip off), rotate then shift whole pixels as two resamplings. Where the shifted
    # pixel's source lies inside the image the two agree to float round-off; the border the
    # shift brings in is the reflection of the rotated image there, of the image here (the
    # same when nothing is rotated).
    import keras

    from kdkeras.data.numpy_data import augmentation_layers

    images = np.random.default_rng(0).integers(0, 256, (6, 16, 16, 3)).astype("float32")
    seed = tf.constant([3, 4])
    here = augment_batch(tf.constant(images), seed, shift=0.25, rotation=rotation,
                         flip=False).numpy()
    u = tf.random.stateless_uniform((6, 4), seed=seed, minval=-1.0, maxval=1.0).numpy()
    shifts = np.round(u[:, :2] * 0.25 * 16).astype(int)            # (tx, ty) whole pixels
    there, inside = [], np.zeros(here.shape, bool)
    for image, (tx, ty), angle in zip(images, shifts, u[:, 2] * rotation):
        layers = augmentation_layers(shift=0.25, rotation=rotation or 1.0, flip=False)
        rotate, translate = layers.layers
        rotate.factor = (-angle / 360.0,) * 2     # Keras turns the other way: same law
        translate.height_lower = translate.height_upper = ty / 16
        translate.width_lower = translate.width_upper = tx / 16
        there.append(keras.ops.convert_to_numpy(layers(image[None], training=True))[0])
        inside[len(there) - 1, max(ty, 0):16 + min(ty, 0), max(tx, 0):16 + min(tx, 0)] = True
    error = np.abs(np.stack(there) - here)
    assert error[inside].max() < 1e-3 and inside.mean() < 0.85     # a border was brought in
    if rotation:
        assert np.mean(error[~inside] > 1.0) > 0.9
    else:
        assert error[~inside].max() == 0.0
