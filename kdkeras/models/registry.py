"""Model registry: `get(name, ...)` and `names()`.

Every entry builds a functional `keras.Model` whose single output is the
logits (no softmax), named like its registry entry, with its stage outputs as
`tap_*` layers (see `kdkeras.models.taps`). Its input is pixels in [0, 255]:
the first layer, `"input_normalization"` (`kdkeras.models.InputNormalization`),
normalises them with the statistics `input_normalization=` names (see
`kdkeras.models.normalization`).
"""

from __future__ import annotations

import dataclasses
import inspect
import numbers
from collections.abc import Callable, Sequence

import keras

from kdkeras.models import mobilenet, resnet, vgg
from kdkeras.models.normalization import (NormalizationSpec, resolve_statistics,
                                           with_input_normalization)

CIFAR_INPUT_SHAPE = (32, 32, 3)
CIFAR_NUM_CLASSES = 100
IMAGENET64_INPUT_SHAPE = (64, 64, 3)
IMAGENET64_NUM_CLASSES = 1000


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A registry entry: the builder and the input, classes and statistics it defaults to."""

    builder: Callable[..., keras.Model]
    input_shape: tuple[int, int, int]
    num_classes: int
    input_normalization: str


_CIFAR = dict(input_shape=CIFAR_INPUT_SHAPE, num_classes=CIFAR_NUM_CLASSES,
              input_normalization="cifar100")
_IMAGENET64 = dict(input_shape=IMAGENET64_INPUT_SHAPE, num_classes=IMAGENET64_NUM_CLASSES,
                   input_normalization="imagenet")
# `get`'s default for input_normalization: the entry's own dataset statistics.
DEFAULT = "default"

_MODELS: dict[str, ModelSpec] = {
    "vgg11": ModelSpec(vgg.vgg11, **_CIFAR),
    "vgg6": ModelSpec(vgg.vgg6, **_CIFAR),
    "resnet32": ModelSpec(resnet.resnet32, **_CIFAR),
    "resnet8": ModelSpec(resnet.resnet8, **_CIFAR),
    "resnet50": ModelSpec(resnet.resnet50, **_CIFAR),
    "resnet18": ModelSpec(resnet.resnet18, **_CIFAR),
    "resnet10": ModelSpec(resnet.resnet10, **_CIFAR),
    "mobilenet16": ModelSpec(mobilenet.mobilenet16, **_IMAGENET64),
    "mobilenet9": ModelSpec(mobilenet.mobilenet9, **_IMAGENET64),
}

@dataclasses.dataclass(frozen=True)
class Pair:
    """A teacher -> student pair of the paper, the data it was reported on and its figures."""

    key: str               # its name in PAPER_PAIRS (and in kdkeras.reproduce.tables)
    teacher: str
    student: str
    family: str            # "cifar" (CIFAR-100 in the paper) or "imagenet64"
    p1_depth: int          # the paper's full P1: cross-three, or cross-four for MobileNet
    title: str
    assistant: str | None = None   # the two-stage middle model (ResNet-18)
    # The (params, compute) reduction factors the paper reports, teacher / student.
    params_reduction: float | None = None
    compute_reduction: float | None = None


# The paper's pairs, listed once. ResNet-50 -> ResNet-10 is reported as -72.19% params
# and -73.16% compute, i.e. 1 / (1 - 0.7219) and 1 / (1 - 0.7316); its two stages
# through the ResNet-18 assistant have no figures.
PAPER_PAIRS: dict[str, Pair] = {
    "vgg": Pair("vgg", "vgg11", "vgg6", "cifar", 3, "VGG-11 → VGG-6", None, 2.08, 3.5),
    "resnet": Pair("resnet", "resnet32", "resnet8", "cifar", 3, "ResNet-32 → ResNet-8", None,
                   6.11, 5.27),
    "mobilenet": Pair("mobilenet", "mobilenet16", "mobilenet9", "imagenet64", 4,
                      "MobileNet-16 → MobileNet-9", None, 1.59, 2.05),
    "resnet50": Pair("resnet50", "resnet50", "resnet10", "cifar", 3,
                     "ResNet-50 → (ResNet-18 →) ResNet-10", "resnet18",
                     1 / (1 - 0.7219), 1 / (1 - 0.7316)),
}


def names() -> list[str]:
    """The registered model names, teachers before their students."""
    return list(_MODELS)


def spec(name: str) -> ModelSpec:
    """The registry entry of `name`; `ValueError` for an unknown name."""
    if name not in _MODELS:
        raise ValueError(f"Unknown model {name!r}. Valid names: {', '.join(names())}")
    return _MODELS[name]


def _check_num_classes(num_classes) -> int:
    if (
        isinstance(num_classes, bool)
        or not isinstance(num_classes, numbers.Integral)
        or num_classes < 1
    ):
        raise ValueError(
            f"`num_classes` must be a positive integer. Received: num_classes={num_classes!r}"
        )
    return int(num_classes)


def _check_input_shape(input_shape) -> tuple[int, int, int]:
    ok = (
        isinstance(input_shape, Sequence)
        and not isinstance(input_shape, str)
        and len(input_shape) == 3
        and all(
            isinstance(d, numbers.Integral) and not isinstance(d, bool) and d >= 1
            for d in input_shape
        )
    )
    if not ok:
        raise ValueError(
            "`input_shape` must be (height, width, channels), three positive "
            f"integers, channels last. Received: input_shape={input_shape!r}"
        )
    return tuple(int(d) for d in input_shape)


def get(
    name: str,
    num_classes: int | None = None,
    input_shape: Sequence[int] | None = None,
    *,
    input_normalization: NormalizationSpec = DEFAULT,
    **kwargs,
) -> keras.Model:
    """Builds the registered model `name` with fresh weights.

    Args:
        name: one of `names()`.
        num_classes: logits width; default 100 for the CIFAR models, 1000 for the MobileNets.
        input_shape: (H, W, C); default (32, 32, 3) for CIFAR models, (64, 64, 3) for MobileNets.
        input_normalization: the statistics its first layer normalises pixels in
            [0, 255] with: a name of `kdkeras.models.STATISTICS` (`"cifar10"`,
            `"cifar100"`, `"imagenet"`, ...), a `(mean, std)` pair in [0, 1]
            units, or None for a model without the layer (it then takes
            already-normalised inputs). Default: the statistics of the dataset
            the entry defaults to, `"cifar100"` for the CIFAR models and
            `"imagenet"` for the MobileNets; pass your training data's.
        **kwargs: family options, e.g. `batch_norm=False` / `dropout=` (VGG),
            `shortcut="projection"` (ResNet), `stem_strides=1` (MobileNet).

    Returns:
        A functional `keras.Model` named `name`, inputs images, output logits.

    Raises:
        ValueError: unknown name or option, or a bad `num_classes` / `input_shape`
            / `input_normalization`.
    """
    entry = spec(name)
    num_classes = _check_num_classes(entry.num_classes if num_classes is None else num_classes)
    input_shape = _check_input_shape(entry.input_shape if input_shape is None else input_shape)
    options = [
        p for p in inspect.signature(entry.builder).parameters
        if p not in ("num_classes", "input_shape")
    ]
    unknown = sorted(set(kwargs) - set(options))
    if unknown:
        raise ValueError(
            f"Unknown option(s) for model {name!r}: {', '.join(unknown)}. "
            f"Valid options: {', '.join(options) or 'none'}"
        )
    if isinstance(input_normalization, str) and input_normalization == DEFAULT:
        input_normalization = entry.input_normalization
    resolve_statistics(input_normalization, channels=input_shape[-1])  # refused before building
    model = entry.builder(num_classes=num_classes, input_shape=input_shape, **kwargs)
    return with_input_normalization(model, input_normalization)
