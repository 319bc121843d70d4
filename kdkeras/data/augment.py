"""The paper's training augmentation, vectorised over a batch: shift, rotation, flip.

Chou, Chiu & Liao (2021) augment with "random shift, random rotation and
horizontal flip" without giving magnitudes. The defaults here are the usual CIFAR
choices (`kdkeras.data.augment_spec.PAPER_AUGMENTATION`, shared by every data
path): shifts of up to 12.5 % of the side (4 px of 32, i.e. pad-4-and-crop), in
whole pixels; rotations uniform in +-15 degrees about the centre; a flip with
probability 1/2; pixels that come from outside the image are filled by reflection
(`"reflect"`: ...c b a | a b c... ) so no black borders appear; `"constant"` fills
with `fill_value` (0 = black, what pad-and-crop does). kdkeras augments pixels
in [0, 255], before the model normalises them (it always did: the pipelines
normalised after augmenting), so `fill_value` is in pixel units and 0 is black,
not the mean colour.

All three are one affine map per image, so a whole batch is warped by a single
`ImageProjectiveTransformV3` call (the op behind `keras.layers.RandomRotation`),
with bilinear sampling. The random parameters come from
`tf.random.stateless_uniform` with an explicit seed: the same images and seed give
the same output on every run.
"""

from __future__ import annotations

import math

import tensorflow as tf

from kdkeras.data.augment_spec import PAPER_AUGMENTATION as _PAPER
from kdkeras.data.augment_spec import AugmentSpec


def random_affine_transforms(batch_size: tf.Tensor | int, height: tf.Tensor | int,
                             width: tf.Tensor | int, seed: tf.Tensor, *,
                             shift: float = _PAPER.shift, rotation: float = _PAPER.rotation,
                             flip: bool = _PAPER.flip) -> tf.Tensor:
    """Random per-image transforms in `ImageProjectiveTransformV3` form, shape (B, 8).

    Each row `[a0, a1, a2, b0, b1, b2, 0, 0]` maps an output pixel (x, y) to the
    input point (a0 x + a1 y + a2, b0 x + b1 y + b2). The forward warp is: flip
    (x -> W-1-x) with probability 1/2, rotate by theta ~ U(-rotation, rotation)
    degrees about the centre ((W-1)/2, (H-1)/2), then translate by
    (round(U(-1, 1) * shift * W), round(U(-1, 1) * shift * H)) pixels.

    Args:
      batch_size, height, width: B, H, W.
      seed: shape-(2,) integer seed for `tf.random.stateless_uniform`.
      shift: largest shift as a fraction of the side (0 disables).
      rotation: largest rotation in degrees (0 disables).
      flip: whether to flip half of the images.
    """
    u = tf.random.stateless_uniform((batch_size, 4), seed=seed, minval=-1.0, maxval=1.0)
    h = tf.cast(height, tf.float32)
    w = tf.cast(width, tf.float32)
    tx = tf.round(u[:, 0] * shift * w)
    ty = tf.round(u[:, 1] * shift * h)
    theta = u[:, 2] * (rotation * math.pi / 180.0)
    f = tf.cast(u[:, 3] < 0.0, tf.float32) if flip else tf.zeros_like(tx)
    cx, cy = (w - 1.0) / 2.0, (h - 1.0) / 2.0
    cos, sin = tf.cos(theta), tf.sin(theta)
    # Inverse map: undo the shift, then the rotation about the centre, then the flip.
    x1 = (cos, sin, cos * (-tx - cx) + sin * (-ty - cy) + cx)
    y1 = (-sin, cos, -sin * (-tx - cx) + cos * (-ty - cy) + cy)
    sign = 1.0 - 2.0 * f
    a = (sign * x1[0], sign * x1[1], sign * x1[2] + f * (w - 1.0))
    zeros = tf.zeros_like(tx)
    return tf.stack([*a, *y1, zeros, zeros], axis=1)


def augment_batch(images: tf.Tensor, seed: tf.Tensor, *, shift: float = _PAPER.shift,
                  rotation: float = _PAPER.rotation, flip: bool = _PAPER.flip,
                  fill_mode: str = _PAPER.fill_mode, fill_value: float = _PAPER.fill_value,
                  interpolation: str = _PAPER.interpolation) -> tf.Tensor:
    """Randomly shifts, rotates and flips each image of a float NHWC batch.

    Args:
      images: float tensor (B, H, W, C), any value range.
      seed: shape-(2,) integer seed; same seed and images -> same output.
      shift, rotation, flip: see `random_affine_transforms`.
      fill_mode: `"reflect"`, `"constant"`, `"nearest"` or `"wrap"`.
      fill_value: the value used by `"constant"`, in the images' units (pixels).
      interpolation: `"bilinear"` or `"nearest"`.

    Returns:
      A tensor of the same shape and dtype.
    """
    AugmentSpec(shift, rotation, flip, fill_mode, fill_value, interpolation)  # checks them
    if not (shift or rotation or flip):
        return images
    shape = tf.shape(images)
    transforms = random_affine_transforms(shape[0], shape[1], shape[2], seed, shift=shift,
                                          rotation=rotation, flip=flip)
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=shape[1:3],
        fill_value=tf.cast(fill_value, tf.float32), interpolation=interpolation.upper(),
        fill_mode=fill_mode.upper())
    return tf.ensure_shape(out, images.shape)
