"""MobileNet-16 (teacher) and MobileNet-9 (student) for 64x64 ImageNet images.

SSKD's CIFAR MobileNets (Lee, Kim & Song, ECCV 2018; sseung0703/SSKD_SVD
`nets/MobileNet.py`) with a stride-2 stem so that a 64x64 input gives the same
feature-map sizes as their 32x32 one:

    stem: conv3x3 32, stride 2, BN, ReLU                      (32x32x32)
    stage1: DS(64, s1)                                        -> tap_stage1 32x32x64
    stage2: DS(128, s2) [+ DS(128, s1) in the teacher]        -> tap_stage2 16x16x128
    stage3: DS(256, s2) [+ DS(256, s1)]                       -> tap_stage3  8x8x256
    stage4: DS(512, s2) [+ DS(512, s1)]                       -> tap_stage4  4x4x512
    GAP -> FC(classes)

A DS (depthwise separable) block is depthwise 3x3 (stride s) - BN - ReLU -
pointwise 1x1 - BN - ReLU, convs without bias. The student keeps the first
block of every stage of the teacher (SSKD's choice), so its taps have the
teacher's shapes. "16" = stem + 7 x (dw + pw) + FC; "9" = stem + 4 x (dw + pw),
without the FC: the paper's two counts cannot both follow one rule
(ARCHITECTURES.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

BN_MOMENTUM = 0.9  # SSKD's slim batch_norm decay
BN_EPSILON = 1e-5

STAGE_FILTERS = (64, 128, 256, 512)
STAGE_STRIDES = (1, 2, 2, 2)
MOBILENET16_DEPTHS = (1, 2, 2, 2)
MOBILENET9_DEPTHS = (1, 1, 1, 1)


def _bn_relu(x, name: str):
    x = keras.layers.BatchNormalization(
        momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"{name}_bn"
    )(x)
    return keras.layers.Activation("relu", name=f"{name}_relu")(x)


def depthwise_separable_block(x, filters: int, strides: int, name: str):
    """dw3x3(stride)-BN-ReLU, pw1x1(filters)-BN-ReLU. Layers `{name}_dw_*`, `{name}_pw_*`."""
    x = keras.layers.DepthwiseConv2D(
        3,
        strides=strides,
        padding="same",
        use_bias=False,
        depthwise_initializer="he_normal",
        name=f"{name}_dw_conv",
    )(x)
    x = _bn_relu(x, name=f"{name}_dw")
    x = keras.layers.Conv2D(
        filters, 1, use_bias=False, kernel_initializer="he_normal", name=f"{name}_pw_conv"
    )(x)
    return _bn_relu(x, name=f"{name}_pw")


def mobilenet(
    stage_depths: Sequence[int],
    num_classes: int,
    input_shape: Sequence[int],
    name: str,
    stem_strides: int = 2,
    stem_filters: int = 32,
    stage_filters: Sequence[int] = STAGE_FILTERS,
    stage_strides: Sequence[int] = STAGE_STRIDES,
) -> keras.Model:
    """Builds a MobileNet: stem, stages of DS blocks, GAP, logits.

    Layer names: `stem_conv|bn|relu`, `tap_stem`, `stage{s}_block{b}_dw_conv|bn|relu`,
    `stage{s}_block{b}_pw_conv|bn|relu`, `tap_stage{s}`, `gap`, `logits`.

    Args:
        stage_depths: DS blocks per stage; the first of a stage has its stride.
        num_classes: width of the logits layer.
        input_shape: (H, W, C).
        name: the model's name.
        stem_strides: stride of the 3x3 stem conv (2 for 64x64 inputs, SSKD used 1 at 32x32).
        stem_filters: channels of the stem conv.
        stage_filters: pointwise width of each stage.
        stage_strides: stride of each stage's first block.
    """
    if not len(stage_depths) == len(stage_filters) == len(stage_strides):
        raise ValueError(
            "`stage_depths`, `stage_filters` and `stage_strides` must have the same "
            f"length. Received: stage_depths={stage_depths}, "
            f"stage_filters={stage_filters}, stage_strides={stage_strides}"
        )
    if stem_strides not in (1, 2):
        raise ValueError(f"`stem_strides` must be 1 or 2. Received: stem_strides={stem_strides}")

    # === Functional Model ===
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = keras.layers.Conv2D(
        stem_filters,
        3,
        strides=stem_strides,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        name="stem_conv",
    )(inputs)
    x = _bn_relu(x, name="stem")
    # The stem output is the first of 5 taps, so P1 can reach cross-four (the
    # paper's MobileNet setting).
    x = keras.layers.Identity(name="tap_stem")(x)
    for s, (depth, filters, stride) in enumerate(
        zip(stage_depths, stage_filters, stage_strides), start=1
    ):
        for b in range(1, depth + 1):
            x = depthwise_separable_block(
                x, filters, stride if b == 1 else 1, name=f"stage{s}_block{b}"
            )
        x = keras.layers.Identity(name=f"tap_stage{s}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, logits, name=name)


def mobilenet16(num_classes=1000, input_shape=(64, 64, 3), stem_strides=2) -> keras.Model:
    """MobileNet-16 teacher: stem + 7 DS blocks (1, 2, 2, 2 a stage) + FC."""
    return mobilenet(MOBILENET16_DEPTHS, num_classes, input_shape, "mobilenet16", stem_strides)


def mobilenet9(num_classes=1000, input_shape=(64, 64, 3), stem_strides=2) -> keras.Model:
    """MobileNet-9 student: stem + 4 DS blocks (the first of each teacher stage) + FC."""
    return mobilenet(MOBILENET9_DEPTHS, num_classes, input_shape, "mobilenet9", stem_strides)
