"""The tf.data path's augmentation written in JAX: one affine warp per image, on the device.

`kdkeras.data.augment` (the tf.data path) draws, per image, u ~ U(-1, 1)⁴ and
builds one affine map: a horizontal flip when u₃ < 0, a rotation by u₂·rotation
degrees about the centre, a shift of round(u₀·shift·W), round(u₁·shift·H)
whole pixels; then `ImageProjectiveTransformV3` samples every output pixel at
its preimage (bilinear, reflected borders). This module is that definition in
`jax.numpy`:

* `affine_transforms(u, H, W, spec)` is `random_affine_transforms` given the
  same u (the test checks it to float32 round-off, u taken from TensorFlow);
* `warp(images, transforms, spec)` is `ImageProjectiveTransformV3`: TensorFlow's
  `MapCoordinate` for the fill mode, then its bilinear or nearest sampling
  (checked against the TensorFlow op on the same transforms);
* `augment_batch(images, key, spec)` draws u with `jax.random.uniform`.

The magnitudes are `kdkeras.data.augment_spec.AugmentSpec` (one definition for
every data path). The random numbers differ from TensorFlow's, so the two paths
give equally distributed, not equal, augmentations for one seed
(`tests/data/test_device_augment.py` compares the distributions).

Everything is traceable (`jax.jit`, `lax.scan`): no host work per batch.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from kdkeras.data.augment_spec import PAPER_AUGMENTATION, AugmentSpec


def affine_transforms(u, height: int, width: int,
                      spec: AugmentSpec = PAPER_AUGMENTATION):
    """Per-image inverse maps `[a0, a1, a2, b0, b1, b2, 0, 0]`, shape (B, 8), from u of shape (B, 4).

    An output pixel (x, y) samples the input at (a0 x + a1 y + a2, b0 x + b1 y + b2),
    as in `kdkeras.data.augment.random_affine_transforms`.
    """
    h, w = float(height), float(width)
    tx = jnp.round(u[:, 0] * spec.shift * w)
    ty = jnp.round(u[:, 1] * spec.shift * h)
    theta = u[:, 2] * (spec.rotation * math.pi / 180.0)
    f = (u[:, 3] < 0.0).astype(jnp.float32) if spec.flip else jnp.zeros_like(tx)
    cx, cy = (w - 1.0) / 2.0, (h - 1.0) / 2.0
    cos, sin = jnp.cos(theta), jnp.sin(theta)
    # Inverse map: undo the shift, then the rotation about the centre, then the flip.
    x1 = (cos, sin, cos * (-tx - cx) + sin * (-ty - cy) + cx)
    y1 = (-sin, cos, -sin * (-tx - cx) + cos * (-ty - cy) + cy)
    sign = 1.0 - 2.0 * f
    a = (sign * x1[0], sign * x1[1], sign * x1[2] + f * (w - 1.0))
    zeros = jnp.zeros_like(tx)
    return jnp.stack([*a, *y1, zeros, zeros], axis=1)


def _map_coordinate(coord, length: int, fill_mode: str):
    """TensorFlow's `MapCoordinate<fill_mode>` (image_ops.h): where an outside point samples."""
    n = float(length)
    if fill_mode == "constant":
        return coord
    if length <= 1:
        return jnp.zeros_like(coord)
    if fill_mode == "nearest":
        return jnp.clip(coord, 0.0, n - 1.0)
    size2 = 2.0 * n
    if fill_mode == "reflect":   # [abcd] -> [dcba|abcd|dcba]
        below = size2 * jnp.trunc(-coord / size2) + coord
        below = jnp.where(below < -n, below + size2, -below - 1.0)
        above = coord - size2 * jnp.trunc(coord / size2)
        above = jnp.where(above >= n, size2 - above - 1.0, above)
    else:                        # "wrap": [abcd] -> [abcd|abcd|abcd]
        below = coord + n * (jnp.trunc(-coord / (n - 1.0)) + 1.0)
        above = coord - n * jnp.trunc(coord / (n - 1.0))
    mapped = jnp.where(coord < 0, below, jnp.where(coord > n - 1.0, above, coord))
    return jnp.clip(mapped, 0.0, n - 1.0)


def _read(image, yi, xi, fill_value):
    """image[yi, xi, :] where (yi, xi) is inside, `fill_value` elsewhere (integer indices)."""
    h, w = image.shape[0], image.shape[1]
    inside = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
    values = image[jnp.clip(yi, 0, h - 1), jnp.clip(xi, 0, w - 1)]
    return jnp.where(inside[..., None], values, jnp.asarray(fill_value, image.dtype))


def _warp_one(image, transform, spec: AugmentSpec):
    h, w = image.shape[0], image.shape[1]
    ys, xs = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32),
                          indexing="ij")
    x_in = transform[0] * xs + transform[1] * ys + transform[2]
    y_in = transform[3] * xs + transform[4] * ys + transform[5]
    x = _map_coordinate(x_in, w, spec.fill_mode)
    y = _map_coordinate(y_in, h, spec.fill_mode)
    if spec.interpolation == "nearest":
        return _read(image, jnp.round(y).astype(jnp.int32), jnp.round(x).astype(jnp.int32),
                     spec.fill_value)
    x0, y0 = jnp.floor(x), jnp.floor(y)
    x1, y1 = x0 + 1.0, y0 + 1.0
    ix0, iy0 = x0.astype(jnp.int32), y0.astype(jnp.int32)
    ix1, iy1 = ix0 + 1, iy0 + 1
    wx0, wx1 = (x1 - x)[..., None], (x - x0)[..., None]
    wy0, wy1 = (y1 - y)[..., None], (y - y0)[..., None]
    top = wx0 * _read(image, iy0, ix0, spec.fill_value) + wx1 * _read(image, iy0, ix1,
                                                                      spec.fill_value)
    bottom = wx0 * _read(image, iy1, ix0, spec.fill_value) + wx1 * _read(image, iy1, ix1,
                                                                         spec.fill_value)
    return wy0 * top + wy1 * bottom


def warp(images, transforms, spec: AugmentSpec = PAPER_AUGMENTATION):
    """`ImageProjectiveTransformV3(images, transforms)` for a float NHWC batch (affine rows)."""
    return jax.vmap(lambda image, t: _warp_one(image, t, spec))(images, transforms)


def augment_batch(images, key, spec: AugmentSpec = PAPER_AUGMENTATION):
    """Randomly shifts, rotates and flips each image of a float NHWC batch; same key, same output."""
    if spec.is_identity:
        return images
    batch, height, width = images.shape[:3]
    u = jax.random.uniform(key, (batch, 4), jnp.float32, minval=-1.0, maxval=1.0)
    return warp(images, affine_transforms(u, height, width, spec), spec)
