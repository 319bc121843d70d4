"""Model cost: parameters, multiply-accumulates / FLOPs, and latency.

Conventions (those of ARCHITECTURES.md and of most papers' "FLOPs" tables):

* **Params** are what Keras counts (`model.count_params()`): trainable and
  non-trainable weights, so BatchNorm's moving mean and variance are included.
* **MACs** are the multiply-accumulates of one example (batch size 1) through
  the convolution (`Conv1D/2D/3D`, grouped included), depthwise, separable,
  transposed-convolution and `Dense` layers, computed analytically from the
  shapes in the functional graph:
    conv:       H_out * W_out * C_out * k_h * k_w * C_in / groups
    depthwise:  H_out * W_out * C_in * depth_multiplier * k_h * k_w
    separable:  depthwise + H_out * W_out * C_in * depth_multiplier * C_out
    transposed: H_in * W_in * C_in * k_h * k_w * C_out
    dense:      (positions) * C_in * units
  Biases, BatchNorm, activations, pooling, additions and padding are not
  counted (they are a few percent at most for these nets).
* **FLOPs = 2 x MACs** (a multiply and an add). Papers that say "FLOPs" for
  these networks often mean MACs; ratios are the same either way.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time

import keras
import numpy as np

from kdkeras.models.taps import functional_graph


def count_params(model: keras.Model) -> int:
    """Trainable + non-trainable parameters, as `model.count_params()` counts them."""
    return int(model.count_params())


def _nodes(model: keras.Model):
    """The model's layer calls in forward order."""
    by_depth = functional_graph(model, "count_macs")._nodes_by_depth
    for depth in sorted(by_depth, reverse=True):
        yield from by_depth[depth]


def _static(shape, layer) -> tuple[int, ...]:
    if any(d is None for d in shape[1:]):
        raise ValueError(
            f"count_macs needs static shapes, but layer {layer.name!r} sees shape "
            f"{tuple(shape)}. Build the model with a fixed input_shape."
        )
    return tuple(shape[1:])


def _spatial_and_channels(shape, data_format):
    if data_format == "channels_first":
        return shape[1:], shape[0]
    return shape[:-1], shape[-1]


_COUNTED_LAYERS = (
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
    keras.layers.DepthwiseConv1D,
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv1D,
    keras.layers.SeparableConv2D,
    keras.layers.Dense,
)


def _layer_macs(layer, in_shape, out_shape) -> int:
    """MACs of one call of `layer` on one example (shapes without the batch axis)."""
    if isinstance(layer, (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)):
        out_sp, _ = _spatial_and_channels(out_shape, layer.data_format)
        _, c_in = _spatial_and_channels(in_shape, layer.data_format)
        mid = c_in * layer.depth_multiplier
        positions = math.prod(out_sp)
        return positions * mid * math.prod(layer.kernel_size) + positions * mid * layer.filters
    if isinstance(layer, (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)):
        out_sp, c_out = _spatial_and_channels(out_shape, layer.data_format)
        return math.prod(out_sp) * c_out * math.prod(layer.kernel_size)
    if isinstance(
        layer,
        (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose),
    ):
        in_sp, c_in = _spatial_and_channels(in_shape, layer.data_format)
        return math.prod(in_sp) * c_in * math.prod(layer.kernel_size) * layer.filters
    if isinstance(layer, (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)):
        out_sp, c_out = _spatial_and_channels(out_shape, layer.data_format)
        _, c_in = _spatial_and_channels(in_shape, layer.data_format)
        return math.prod(out_sp) * c_out * math.prod(layer.kernel_size) * c_in // layer.groups
    if isinstance(layer, keras.layers.Dense):
        return math.prod(in_shape[:-1]) * in_shape[-1] * layer.units
    raise TypeError(f"No MAC formula for layer {layer.name!r} of type {type(layer).__name__}")


def count_macs(model: keras.Model) -> int:
    """Multiply-accumulates of one forward pass of one example (see module docstring).

    Nested functional/Sequential models are counted once per call.

    Raises:
        ValueError: a subclassed (non-functional) model, or a counted layer
            whose input or output shape is not static.
    """
    total = 0
    for node in _nodes(model):
        layer = node.operation
        if isinstance(layer, keras.Model):
            total += count_macs(layer)
            continue
        if isinstance(layer, _COUNTED_LAYERS):
            total += _layer_macs(
                layer,
                _static(node.input_tensors[0].shape, layer),
                _static(node.output_tensors[0].shape, layer),
            )
    return int(total)


def count_flops(model: keras.Model) -> int:
    """FLOPs of one example's forward pass: 2 x `count_macs(model)`."""
    return 2 * count_macs(model)


def device_name() -> str:
    """The device Keras runs on: the accelerator's name if there is one, else the CPU's."""
    backend = keras.config.backend()
    try:
        if backend == "jax":
            import jax

            dev = jax.devices()[0]
            if dev.platform != "cpu":
                return f"{dev.platform.upper()}: {dev.device_kind}"
        elif backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            if gpus:
                details = tf.config.experimental.get_device_details(gpus[0])
                return f"GPU: {details.get('device_name', gpus[0].name)}"
        elif backend == "torch":
            import torch

            if torch.cuda.is_available():
                return f"GPU: {torch.cuda.get_device_name(0)}"
    except Exception:  # a broken accelerator stack still leaves the CPU to name
        pass
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cpu = cpu or platform.processor() or platform.machine() or "unknown CPU"
    return f"CPU: {cpu} ({os.cpu_count()} logical cores)"


def measure_latency(
    model: keras.Model, batch_size: int = 1, repeats: int = 50, warmup: int = 5
) -> dict:
    """Inference latency of `model.predict_on_batch` on random inputs.

    `warmup` calls (tracing/compilation included) are discarded, then
    `repeats` calls are timed one by one with `time.perf_counter`.

    Returns:
        dict(median_ms, p90_ms, device, backend, batch_size, repeats).
    """
    for arg, value, low in (("batch_size", batch_size, 1), ("repeats", repeats, 1), ("warmup", warmup, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"`{arg}` must be an integer >= {low}. Received: {arg}={value!r}")
    shape = model.inputs[0].shape[1:]
    if len(model.inputs) != 1 or any(d is None for d in shape):
        raise ValueError(
            "measure_latency needs a single-input model with a static input shape. "
            f"Received: inputs {[tuple(t.shape) for t in model.inputs]}"
        )
    x = np.random.default_rng(0).standard_normal((batch_size, *shape)).astype("float32")
    for _ in range(warmup):
        model.predict_on_batch(x)
    times_ms = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict_on_batch(x)
        times_ms.append(1000.0 * (time.perf_counter() - start))
    return {
        "median_ms": float(statistics.median(times_ms)),
        "p90_ms": float(np.percentile(times_ms, 90)),
        "device": device_name(),
        "backend": keras.config.backend(),
        "batch_size": batch_size,
        "repeats": repeats,
    }


def cost_report(teacher: keras.Model, student: keras.Model) -> dict:
    """Params / MACs / FLOPs of a teacher and a student and their ratios.

    Returns:
        A flat dict: `teacher_params`, `student_params`, `teacher_macs`,
        `student_macs`, `teacher_flops`, `student_flops`,
        `compression_ratio` (teacher params / student params),
        `computation_ratio` (teacher MACs / student MACs), and the paper-style
        reductions `params_reduction_pct` = 100 (1 - student/teacher params) and
        `macs_reduction_pct` likewise.
    """
    tp, sp = count_params(teacher), count_params(student)
    tm, sm = count_macs(teacher), count_macs(student)
    return {
        "teacher": teacher.name,
        "student": student.name,
        "teacher_params": tp,
        "student_params": sp,
        "teacher_macs": tm,
        "student_macs": sm,
        "teacher_flops": 2 * tm,
        "student_flops": 2 * sm,
        "compression_ratio": tp / sp,
        "computation_ratio": tm / sm if sm else math.inf,
        "params_reduction_pct": 100.0 * (1.0 - sp / tp),
        "macs_reduction_pct": 100.0 * (1.0 - sm / tm) if tm else 0.0,
    }
