"""The paper's training augmentation, defined once for every data path.

Chou, Chiu & Liao (2021) augment with "random shift, random rotation and
horizontal flip" without giving magnitudes; kdkeras uses the usual CIFAR
choices, held here and read by every path that augments:

* `kdkeras.data.augment` (the tf.data path: one `ImageProjectiveTransformV3`
  warp per image),
* `kdkeras.data.numpy_data.augmentation_layers` (Keras preprocessing layers,
  the numpy path of the JAX backend: the rotation and the shift resampled one
  after the other, so the border a shift brings in differs; its docstring says how),
* `kdkeras.data.device_augment` (the same warp as the tf.data path, written in
  JAX, for the table engine's data on the device).

Nothing here imports TensorFlow or JAX.
"""

from __future__ import annotations

import dataclasses

FILL_MODES = ("reflect", "constant", "nearest", "wrap")
INTERPOLATIONS = ("bilinear", "nearest")


@dataclasses.dataclass(frozen=True)
class AugmentSpec:
    """The random shift, rotation and flip of one training image.

    Attributes:
      shift: largest shift as a fraction of the side (0.125 = 4 px of 32,
        pad-4-and-crop), drawn as round(U(-1, 1)·shift·side) whole pixels.
      rotation: largest rotation in degrees, drawn uniform in ±rotation.
      flip: a horizontal flip with probability 1/2.
      fill_mode: how pixels from outside the image are filled: `"reflect"`
        (...c b a | a b c..., no black borders), `"constant"` (`fill_value`),
        `"nearest"` or `"wrap"`.
      fill_value: the `"constant"` fill, in the images' units.
      interpolation: `"bilinear"` or `"nearest"` sampling.
    """

    shift: float = 0.125
    rotation: float = 15.0
    flip: bool = True
    fill_mode: str = "reflect"
    fill_value: float = 0.0
    interpolation: str = "bilinear"

    def __post_init__(self):
        if self.fill_mode not in FILL_MODES:
            raise ValueError(f"fill_mode must be one of {sorted(FILL_MODES)}. "
                             f"Received: fill_mode={self.fill_mode!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError("interpolation must be 'bilinear' or 'nearest'. "
                             f"Received: interpolation={self.interpolation!r}")
        if not 0 <= self.shift <= 1 or not 0 <= self.rotation <= 180:
            raise ValueError("shift must be in [0, 1] and rotation in [0, 180] degrees. "
                             f"Received: shift={self.shift}, rotation={self.rotation}")

    @property
    def is_identity(self) -> bool:
        return not (self.shift or self.rotation or self.flip)


PAPER_AUGMENTATION = AugmentSpec()
