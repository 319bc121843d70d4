"""ResNets for 32x32 CIFAR images.

Two families, both ending in global average pooling and a linear logits layer:

* The classic CIFAR ResNet of He et al. (2016, Sec. 4.2), the one the FSP paper
  (Yim et al., 2017) distils: a 3x3 stem of 16 channels, then 3 stages of `n`
  basic blocks with 16/32/64 channels (strides 1/2/2), depth 6n + 2.
  ResNet-32 (n=5) is the teacher and ResNet-8 (n=1) the student;
  `width_multiplier=4` gives the 64/128/256 variant of sseung0703's code.
  Shortcuts default to He's option A (`shortcut="zero_pad"`): a stride-2
  subsample and zero channels, no parameters; `shortcut="projection"` uses a
  1x1 conv + BN instead (option B).
* The ImageNet ResNets (He et al., 2016; torchvision's "v1.5" placement of the
  stride on the 3x3 conv) with a CIFAR stem (one 3x3 stride-1 conv of 64, no
  max-pool) and 4 stages of 64/128/256/512 channels (strides 1/2/2/2):
  ResNet-50 = bottleneck blocks [3, 4, 6, 3] (expansion 4),
  ResNet-18 = basic blocks [2, 2, 2, 2], ResNet-10 = basic blocks [1, 1, 1, 1],
  with 1x1-conv + BN projection shortcuts where the shape changes.

Taps: the output of each stage (after the last block's ReLU) is an Identity
layer `tap_stage{s}`.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

BN_MOMENTUM = 0.9  # torch's default (0.1 in its convention)
BN_EPSILON = 1e-5

SHORTCUTS = ("zero_pad", "projection")


@keras.saving.register_keras_serializable(package="kdkeras")
class ZeroPadShortcut(keras.layers.Layer):
    """He et al.'s option-A shortcut: subsample by `strides`, zero-pad channels.

    `y = pad_channels(x[:, ::s, ::s, :])`, with the extra `filters - C` zero
    channels split evenly before and after the input's (as in the widely used
    CIFAR ResNet code of Y. Idelbayev). It has no weights.

    Args:
        filters: output channels, at least the input's.
        strides: spatial subsampling factor.
    """

    def __init__(self, filters: int, strides: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.strides = int(strides)

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        if c is not None and c > self.filters:
            raise ValueError(
                f"ZeroPadShortcut cannot shrink channels from {c} to {self.filters}. "
                f"Received: input_shape={input_shape}"
            )
        s = self.strides
        h = None if h is None else -(-h // s)
        w = None if w is None else -(-w // s)
        return (b, h, w, self.filters)

    def call(self, inputs):
        s = self.strides
        x = inputs[:, ::s, ::s, :] if s > 1 else inputs
        extra = self.filters - inputs.shape[-1]
        if extra:
            before = extra // 2
            x = ops.pad(x, [[0, 0], [0, 0], [0, 0], [before, extra - before]])
        return x

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "strides": self.strides})
        return config


def _conv(x, filters: int, kernel_size: int, strides: int, name: str):
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        name=name,
    )(x)


def _bn(x, name: str, zero_gamma: bool = False):
    return keras.layers.BatchNormalization(
        momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name,
        gamma_initializer="zeros" if zero_gamma else "ones",
    )(x)


def _shortcut(x, filters: int, strides: int, shortcut: str, name: str):
    """Identity if the shape is unchanged, else option A or a 1x1 projection."""
    if strides == 1 and x.shape[-1] == filters:
        return x
    if shortcut == "zero_pad":
        return ZeroPadShortcut(filters, strides, name=f"{name}_0_pad")(x)
    x = _conv(x, filters, 1, strides, name=f"{name}_0_conv")
    return _bn(x, name=f"{name}_0_bn")


def basic_block(x, filters: int, strides: int, shortcut: str, name: str,
                zero_init_residual: bool = False):
    """conv3x3-BN-ReLU-conv3x3-BN + shortcut, ReLU. Output has `filters` channels."""
    residual = _shortcut(x, filters, strides, shortcut, name)
    x = _conv(x, filters, 3, strides, name=f"{name}_1_conv")
    x = _bn(x, name=f"{name}_1_bn")
    x = keras.layers.Activation("relu", name=f"{name}_1_relu")(x)
    x = _conv(x, filters, 3, 1, name=f"{name}_2_conv")
    x = _bn(x, name=f"{name}_2_bn", zero_gamma=zero_init_residual)
    x = keras.layers.Add(name=f"{name}_add")([residual, x])
    return keras.layers.Activation("relu", name=f"{name}_out")(x)


def bottleneck_block(x, filters: int, strides: int, shortcut: str, name: str,
                     zero_init_residual: bool = False):
    """1x1 (filters), 3x3 (filters, stride), 1x1 (4 * filters), each with BN; + shortcut, ReLU."""
    out_filters = 4 * filters
    residual = _shortcut(x, out_filters, strides, shortcut, name)
    x = _conv(x, filters, 1, 1, name=f"{name}_1_conv")
    x = _bn(x, name=f"{name}_1_bn")
    x = keras.layers.Activation("relu", name=f"{name}_1_relu")(x)
    x = _conv(x, filters, 3, strides, name=f"{name}_2_conv")
    x = _bn(x, name=f"{name}_2_bn")
    x = keras.layers.Activation("relu", name=f"{name}_2_relu")(x)
    x = _conv(x, out_filters, 1, 1, name=f"{name}_3_conv")
    x = _bn(x, name=f"{name}_3_bn", zero_gamma=zero_init_residual)
    x = keras.layers.Add(name=f"{name}_add")([residual, x])
    return keras.layers.Activation("relu", name=f"{name}_out")(x)


BLOCKS = {"basic": basic_block, "bottleneck": bottleneck_block}


def resnet(
    block: str,
    stage_depths: Sequence[int],
    stage_filters: Sequence[int],
    stage_strides: Sequence[int],
    stem_filters: int,
    num_classes: int,
    input_shape: Sequence[int],
    name: str,
    shortcut: str = "projection",
    zero_init_residual: bool = False,
) -> keras.Model:
    """Builds a ResNet: 3x3 stride-1 stem, stages of blocks, GAP, logits.

    Layer names: `stem_conv|bn|relu`, `stage{s}_block{b}_{k}_conv|bn|relu`,
    `stage{s}_block{b}_0_conv|bn` (projection) or `..._0_pad` (option A),
    `stage{s}_block{b}_add|out`, `tap_stem`, `tap_stage{s}`, `gap`, `logits`.

    Args:
        block: "basic" or "bottleneck".
        stage_depths: blocks per stage.
        stage_filters: width of each stage (bottleneck outputs 4x this).
        stage_strides: stride of the first block of each stage.
        stem_filters: channels of the 3x3 stem conv.
        num_classes: width of the logits layer.
        input_shape: (H, W, C).
        name: the model's name.
        shortcut: "zero_pad" (option A) or "projection" (1x1 conv + BN) where
            the shape changes.
        zero_init_residual: start the last BN of every residual branch at
            gamma=0 (Goyal et al. 2017), so each block begins as its shortcut.
    """
    if block not in BLOCKS:
        raise ValueError(f"`block` must be one of {sorted(BLOCKS)}. Received: block={block!r}")
    if shortcut not in SHORTCUTS:
        raise ValueError(f"`shortcut` must be one of {SHORTCUTS}. Received: shortcut={shortcut!r}")
    if not len(stage_depths) == len(stage_filters) == len(stage_strides):
        raise ValueError(
            "`stage_depths`, `stage_filters` and `stage_strides` must have the same "
            f"length. Received: stage_depths={stage_depths}, "
            f"stage_filters={stage_filters}, stage_strides={stage_strides}"
        )
    block_fn = BLOCKS[block]

    # === Functional Model ===
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = _conv(inputs, stem_filters, 3, 1, name="stem_conv")
    x = _bn(x, name="stem_bn")
    x = keras.layers.Activation("relu", name="stem_relu")(x)
    # The stem output is a tap too: with the 3 (or 4) stage outputs it gives the
    # 4 (or 5) maps that the paper's cross-three P1 needs (see docs/models.md).
    x = keras.layers.Identity(name="tap_stem")(x)
    for s, (depth, filters, stride) in enumerate(
        zip(stage_depths, stage_filters, stage_strides), start=1
    ):
        for b in range(1, depth + 1):
            x = block_fn(
                x, filters, stride if b == 1 else 1, shortcut, name=f"stage{s}_block{b}",
                zero_init_residual=zero_init_residual,
            )
        x = keras.layers.Identity(name=f"tap_stage{s}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, logits, name=name)


def cifar_resnet(
    n: int,
    num_classes: int = 100,
    input_shape: Sequence[int] = (32, 32, 3),
    shortcut: str = "zero_pad",
    width_multiplier: int = 1,
    name: str | None = None,
) -> keras.Model:
    """He et al.'s CIFAR ResNet-(6n+2): stem 16k, stages 16k/32k/64k of n basic blocks.

    `k = width_multiplier`. k=4 (stem 64, stages 64/128/256) is the variant whose
    ResNet-32/8 reductions equal the paper's percentages (docs/models.md).
    """
    if n < 1:
        raise ValueError(f"`n` must be at least 1. Received: n={n}")
    k = width_multiplier
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(
            f"`width_multiplier` must be a positive integer. Received: width_multiplier={k!r}"
        )
    return resnet(
        "basic", (n, n, n), (16 * k, 32 * k, 64 * k), (1, 2, 2), 16 * k, num_classes,
        input_shape, name=name or f"resnet{6 * n + 2}", shortcut=shortcut,
    )


def resnet32(
    num_classes=100, input_shape=(32, 32, 3), shortcut="zero_pad", width_multiplier=1
) -> keras.Model:
    """ResNet-32 teacher: CIFAR ResNet, n=5 basic blocks a stage (1 + 30 + 1 layers)."""
    return cifar_resnet(5, num_classes, input_shape, shortcut, width_multiplier, name="resnet32")


def resnet8(
    num_classes=100, input_shape=(32, 32, 3), shortcut="zero_pad", width_multiplier=1
) -> keras.Model:
    """ResNet-8 student: CIFAR ResNet, n=1 basic block a stage (1 + 6 + 1 layers)."""
    return cifar_resnet(1, num_classes, input_shape, shortcut, width_multiplier, name="resnet8")


def _imagenet_resnet(block, depths, num_classes, input_shape, name, shortcut):
    # Residual branches start at zero (as in torchvision's zero_init_residual): without it
    # a ResNet-50 teacher trained only briefly, its BN statistics still near their initial
    # values, doubles its activations block after block in inference mode (taps of
    # |x| ~ 500 after 16 blocks), and the Gram losses on those taps overflow.
    return resnet(
        block, depths, (64, 128, 256, 512), (1, 2, 2, 2), 64, num_classes, input_shape,
        name=name, shortcut=shortcut, zero_init_residual=True,
    )


def resnet50(num_classes=100, input_shape=(32, 32, 3), shortcut="projection") -> keras.Model:
    """ResNet-50 with a CIFAR stem: bottleneck blocks [3, 4, 6, 3]."""
    return _imagenet_resnet("bottleneck", (3, 4, 6, 3), num_classes, input_shape, "resnet50", shortcut)


def resnet18(num_classes=100, input_shape=(32, 32, 3), shortcut="projection") -> keras.Model:
    """ResNet-18 with a CIFAR stem: basic blocks [2, 2, 2, 2]."""
    return _imagenet_resnet("basic", (2, 2, 2, 2), num_classes, input_shape, "resnet18", shortcut)


def resnet10(num_classes=100, input_shape=(32, 32, 3), shortcut="projection") -> keras.Model:
    """ResNet-10 with a CIFAR stem: basic blocks [1, 1, 1, 1]."""
    return _imagenet_resnet("basic", (1, 1, 1, 1), num_classes, input_shape, "resnet10", shortcut)
