"""BatchNormalization folded into the layer before it: a frozen model's inference graph.

In inference mode a BatchNormalization is a per-channel affine map,
`y = γ·(x − μ)/√(σ² + ε) + β`. When `x` is the output of a linear layer with no
activation (a convolution or a dense layer) and nothing else reads `x`, the map
folds into that layer's weights: with `s = γ/√(σ² + ε)` per output channel,

    kernel' = kernel · s        bias' = (bias − μ) · s + β

and the pass over the feature map that the BatchNormalization was is gone. The
result is exact in real arithmetic; in float32 it differs from the unfolded
model by round-off (a ResNet-32's logits by ~1e-6 of their size). TFLite,
TensorRT and XLA's inference paths do the same.

Why kdkeras does it: a distillation run's teachers are frozen and only run
forward, and on a CPU their forward passes are most of the step. Keras 3 runs a
BatchNormalization as separate elementwise ops, each a pass over the whole
feature map; folded, a convolution writes its biased output once. Measured
here, a ResNet-32 forward pass at batch 128 (2 CPU cores) takes 0.79–0.84× the
time folded (`benchmarks/distill_step.py`). The `Distiller` runs folded views
of its teachers (`fold_teacher_batchnorm=True`, the default).

The folded weights are computed from the model's own variables on every call
(a few small ops on the weights, not on the feature maps), so the folded model
is a view, like `tapped_model`: it shares every variable with the model, and
loading a checkpoint into the model (as a resumed run does) changes both.
A snapshot with its own weights could go stale without a sign.
The view is for running a frozen model inside a training step; to deploy a
model, export the model itself (`kdkeras.export`: TFLite's converter folds
BatchNormalization on its own). `model.export` of the view writes a
SavedModel whose calls fail after loading ("Called a function referencing
variables which have been deleted", Keras 3.15.1 / TF 2.21.0).

    folded = fold_batch_norms(teacher)   # same inputs, outputs and layer names
"""

from __future__ import annotations

from collections.abc import Iterable

import keras
from keras import ops

from kdkeras.models.taps import functional_graph

# Layers whose output channel is the kernel's last axis (or, for depthwise
# convolutions, the flattened (input channel, multiplier) pair of its last two).
_FOLDS_INTO = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D,
               keras.layers.Dense)
_DEPTHWISE = (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)


class FoldedBatchNorm(keras.layers.Layer):
    """Where a BatchNormalization was folded into the layer before it: passes its input on.

    It keeps the folded layer's name, so taps and outputs named after it are
    unchanged, and accepts BatchNormalization's call arguments.
    """

    def call(self, inputs, training=None, mask=None):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape


class FoldedLinear(keras.layers.Layer):
    """A convolution or dense layer with the BatchNormalization after it folded in.

    It reads both layers' variables on every call (so it follows them) and
    computes the folded kernel and bias in float32 before casting them to the
    layer's compute dtype. It keeps the linear layer's name.
    """

    def __init__(self, linear, batch_norm, **kwargs):
        super().__init__(name=linear.name, dtype=linear.dtype_policy, **kwargs)
        self.linear = linear
        self.batch_norm = batch_norm

    def folded_weights(self):
        bn, linear = self.batch_norm, self.linear

        def f32(v):
            return ops.cast(v, "float32")

        scale = ops.rsqrt(f32(bn.moving_variance) + bn.epsilon)
        if bn.scale:
            scale = scale * f32(bn.gamma)
        bias = f32(linear.bias) if linear.use_bias else ops.zeros_like(scale)
        bias = (bias - f32(bn.moving_mean)) * scale
        if bn.center:
            bias = bias + f32(bn.beta)
        kernel = f32(linear.kernel)
        if isinstance(linear, _DEPTHWISE):
            kernel = kernel * ops.reshape(scale, kernel.shape[-2:])
        else:
            kernel = kernel * scale
        dtype = self.compute_dtype
        return ops.cast(kernel, dtype), ops.cast(bias, dtype)

    def call(self, inputs):
        kernel, bias = self.folded_weights()
        linear = self.linear
        if isinstance(linear, keras.layers.Dense):
            outputs = ops.matmul(inputs, kernel)
        elif isinstance(linear, _DEPTHWISE):
            outputs = ops.depthwise_conv(inputs, kernel, strides=linear.strides,
                                         padding=linear.padding,
                                         dilation_rate=linear.dilation_rate,
                                         data_format=linear.data_format)
        else:
            outputs = linear.convolution_op(inputs, kernel)
        return ops.add(outputs, bias)

    def compute_output_shape(self, input_shape):
        return self.linear.compute_output_shape(input_shape)


def _is_foldable_layer(layer) -> bool:
    if type(layer) not in _FOLDS_INTO + _DEPTHWISE:  # exactly: a subclass may compute otherwise
        return False
    if getattr(layer, "activation", None) not in (None, keras.activations.linear):
        return False
    if getattr(layer, "lora_enabled", False) or getattr(layer, "quantization_mode", None):
        return False
    return getattr(layer, "data_format", "channels_last") == "channels_last"


def foldable_pairs(model: keras.Model, keep: Iterable[str] = ()) -> dict[str, str]:
    """`{BatchNormalization name: name of the layer it folds into}` for `model`.

    A pair folds when the BatchNormalization normalises the last axis, reads the
    single output of a convolution or dense layer without activation that is
    called once, and nothing else (no other layer, no model output, no name in
    `keep`) reads that output.
    """
    graph = functional_graph(model, reader="Folding BatchNormalization")
    keep = set(keep)
    nodes = [node for depth in graph._nodes_by_depth.values() for node in depth]
    readers: dict[int, int] = {}
    calls: dict[int, int] = {}
    for node in nodes:
        calls[id(node.operation)] = calls.get(id(node.operation), 0) + 1
        for tensor in node.input_tensors:
            readers[id(tensor)] = readers.get(id(tensor), 0) + 1
    outputs = {id(t) for t in graph.outputs}
    pairs = {}
    for node in nodes:
        bn = node.operation
        if not isinstance(bn, keras.layers.BatchNormalization) or len(node.parent_nodes) != 1:
            continue
        axis = bn.axis if isinstance(bn.axis, int) else None
        rank = len(node.input_tensors[0].shape)
        if axis not in (-1, rank - 1) or calls[id(bn)] != 1:
            continue
        parent = node.parent_nodes[0]
        layer = parent.operation
        if not _is_foldable_layer(layer) or layer.name in keep or calls[id(layer)] != 1:
            continue
        (out,) = parent.output_tensors
        if readers.get(id(out)) == 1 and id(out) not in outputs:
            pairs[bn.name] = layer.name
    return pairs


def fold_batch_norms(model: keras.Model, keep: Iterable[str] = ()) -> keras.Model:
    """An inference view of `model` with its BatchNormalizations folded.

    Args:
      model: a functional (or built Sequential) model, e.g. a loaded teacher.
      keep: layer names whose outputs must stay as they are (e.g. a tap placed
        on a convolution's pre-normalisation output): they are not folded into.

    Returns:
      A functional model with the same inputs, outputs and layer names, for
      inference only (`training=True` would not normalise by batch
      statistics). It shares all variables with `model`: each folded pair
      becomes a `FoldedLinear` (the linear layer's name) and a `FoldedBatchNorm`
      (the normalisation's), and every other layer is `model`'s own.
    """
    pairs = foldable_pairs(model, keep)
    graph = functional_graph(model, reader="Folding BatchNormalization")
    into = {layer: bn for bn, layer in pairs.items()}

    def clone(layer):
        if layer.name in pairs:
            return FoldedBatchNorm(name=layer.name, dtype=layer.dtype_policy)
        if layer.name in into:
            return FoldedLinear(layer, graph.get_layer(into[layer.name]))
        return layer

    return keras.models.clone_model(graph, clone_function=clone)
