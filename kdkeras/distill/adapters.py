"""1×1 convolution adapters that make teacher and student tap channels match.

The paper (Sec. V-B) puts a trainable 1×1 conv on each teacher tap whose channel
count differs from the student's, trains it with the distillation loss, and
discards it afterwards. Adapters are bias-free: a bias-free 1×1 conv W is a
linear map of channels, so G(F1·W1, F2·W2) = W1ᵀ·G(F1, F2)·W2, which keeps the
Gram loss a function of the teacher's raw Grams (used by the fast paths).
"""

from __future__ import annotations

import keras


def tap_channels(model: keras.Model) -> list[int]:
    """Channel counts of a tapped model's tap outputs (outputs 1..n)."""
    return [int(t.shape[-1]) for t in model.outputs[1:]]


def build_adapters(teacher_channels, student_channels, *, side: str, always: bool,
                   prefix: str) -> list:
    """One 1×1 conv (or None) per tap; built here so the optimizer sees them.

    `side="teacher"` maps teacher channels to the student's, `"student"` the
    reverse, `"none"` adds nothing (the caller must then have equal channels).
    """
    if len(teacher_channels) != len(student_channels):
        raise ValueError(
            "Teacher and student must expose the same number of taps. Received: "
            f"{len(teacher_channels)} teacher taps and {len(student_channels)} student taps.")
    adapters = []
    for i, (ct, cs) in enumerate(zip(teacher_channels, student_channels)):
        if side == "none" or (ct == cs and not always):
            adapters.append(None)
            continue
        cin, cout = (ct, cs) if side == "teacher" else (cs, ct)
        layer = keras.layers.Conv2D(cout, 1, use_bias=False, name=f"{prefix}_tap{i + 1}_1x1")
        layer.build((None, None, None, cin))
        adapters.append(layer)
    return adapters


def linear_kernel(layer):
    """The (c_in, c_out) kernel matrix of a bias-free 1×1 convolution; None for any other layer.

    Such a layer is a linear map of each pixel's channels, which is what lets
    the Gram of its output be taken from the Gram of its input
    (`kdkeras.losses.adapted_gram`). Anything else (a bias, an activation, a
    stride, a wider kernel, groups) returns None: apply the layer to the map.
    """
    if type(layer) is not keras.layers.Conv2D:   # a subclass may add to the map
        return None
    if (tuple(layer.kernel_size) != (1, 1) or tuple(layer.strides) != (1, 1) or layer.use_bias
            or getattr(layer, "groups", 1) != 1
            or layer.activation not in (None, keras.activations.linear)):
        return None
    return layer.kernel[0, 0]
