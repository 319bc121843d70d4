"""VGG-11 (teacher) and VGG-6 (student) for 32x32 CIFAR images.

The 4-stage pair of SSKD (Lee, Kim & Song, ECCV 2018; sseung0703/SSKD_SVD
`nets/VGG_teacher.py`, `nets/VGG.py`), the closest match to the ratios that
Chou, Chiu & Liao (2021) report for VGG-11 -> VGG-6 (2.08x params, 3.5x compute):

    VGG-11: [conv64]x2, P | [conv128]x2, P | [conv256]x2, P | [conv512]x2, P
            -> flatten -> FC1024 -> dropout -> FC1024 -> dropout -> FC(classes)
    VGG-6:  conv64, P | conv128, P | conv256, P | conv512, P
            -> flatten -> FC1024 -> dropout -> FC(classes)

8 + 3 and 4 + 2 weight layers. Every conv is 3x3 'same' + ReLU; P is a 2x2
max-pool. The four stage outputs (after the pool) are the taps
`tap_stage1` .. `tap_stage4`, 16x16x64, 8x8x128, 4x4x256, 2x2x512 for both nets,
so cross-layer Gram matrices need no adapter.

SSKD's nets have no batch normalisation. Here `batch_norm=True` is the default
(conv -> BN -> ReLU, conv without bias): trained from scratch with SGD at lr
1e-2, the BN net learns from the first epoch on every seed tried, the BN-free
one starts slowly and seed-dependently (docs/models.md gives the check).
`batch_norm=False` gives SSKD's exact layers; params change by a few thousand,
MACs not at all.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

BN_MOMENTUM = 0.9  # torch's 0.1 / slim's decay=0.9 as in SSKD; Keras' default 0.99 lags on short runs
BN_EPSILON = 1e-5

VGG11_STAGE_CONVS = (2, 2, 2, 2)
VGG6_STAGE_CONVS = (1, 1, 1, 1)
STAGE_FILTERS = (64, 128, 256, 512)


def conv_bn_relu(x, filters: int, batch_norm: bool, name: str):
    """3x3 'same' conv, optional BN, ReLU. Layers `{name}_conv`, `{name}_bn`, `{name}_relu`."""
    x = keras.layers.Conv2D(
        filters,
        3,
        padding="same",
        use_bias=not batch_norm,
        kernel_initializer="he_normal",
        name=f"{name}_conv",
    )(x)
    if batch_norm:
        x = keras.layers.BatchNormalization(
            momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"{name}_bn"
        )(x)
    return keras.layers.Activation("relu", name=f"{name}_relu")(x)


def vgg(
    stage_convs: Sequence[int],
    fc_units: Sequence[int],
    num_classes: int,
    input_shape: Sequence[int],
    name: str,
    batch_norm: bool = True,
    dropout: float = 0.5,
    stage_filters: Sequence[int] = STAGE_FILTERS,
) -> keras.Model:
    """Builds a VGG with one max-pooled stage per entry of `stage_convs`.

    Layer names: `block{s}_{i}_conv|bn|relu`, `block{s}_pool`, `tap_stage{s}`,
    `fc{j}`, `fc{j}_dropout`, `logits`.

    Args:
        stage_convs: number of 3x3 convs in each stage.
        fc_units: widths of the hidden fully connected layers (ReLU, then dropout).
        num_classes: width of the logits layer.
        input_shape: (H, W, C); H and W must be at least 2**len(stage_convs).
        name: the model's name.
        batch_norm: conv -> BN -> ReLU (conv without bias) if True, conv(+bias) -> ReLU if False.
        dropout: dropout rate after each hidden FC layer (SSKD: 0.5).
        stage_filters: conv width of each stage.
    """
    if len(stage_convs) != len(stage_filters):
        raise ValueError(
            "`stage_convs` and `stage_filters` must have the same length. "
            f"Received: stage_convs={stage_convs}, stage_filters={stage_filters}"
        )
    min_size = 2 ** len(stage_convs)
    if input_shape[0] < min_size or input_shape[1] < min_size:
        raise ValueError(
            f"{name} max-pools {len(stage_convs)} times, so the input must be at "
            f"least {min_size}x{min_size}. Received: input_shape={tuple(input_shape)}"
        )
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")

    # === Functional Model ===
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = inputs
    for s, (convs, filters) in enumerate(zip(stage_convs, stage_filters), start=1):
        for i in range(1, convs + 1):
            x = conv_bn_relu(x, filters, batch_norm, name=f"block{s}_{i}")
        x = keras.layers.MaxPooling2D(2, name=f"block{s}_pool")(x)
        x = keras.layers.Identity(name=f"tap_stage{s}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for j, units in enumerate(fc_units, start=1):
        x = keras.layers.Dense(
            units, activation="relu", kernel_initializer="he_normal", name=f"fc{j}"
        )(x)
        x = keras.layers.Dropout(dropout, name=f"fc{j}_dropout")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, logits, name=name)


def vgg11(
    num_classes: int = 100,
    input_shape: Sequence[int] = (32, 32, 3),
    batch_norm: bool = True,
    dropout: float = 0.5,
) -> keras.Model:
    """VGG-11 teacher: 8 convs in 4 stages + FC1024, FC1024, FC(classes)."""
    return vgg(
        VGG11_STAGE_CONVS, (1024, 1024), num_classes, input_shape, "vgg11",
        batch_norm=batch_norm, dropout=dropout,
    )


def vgg6(
    num_classes: int = 100,
    input_shape: Sequence[int] = (32, 32, 3),
    batch_norm: bool = True,
    dropout: float = 0.5,
) -> keras.Model:
    """VGG-6 student (SSKD's student): 4 convs in 4 stages + FC1024, FC(classes)."""
    return vgg(
        VGG6_STAGE_CONVS, (1024,), num_classes, input_shape, "vgg6",
        batch_norm=batch_norm, dropout=dropout,
    )
