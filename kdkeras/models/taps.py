"""Feature taps: the intermediate feature maps a distillation loss reads.

A tap is an ordinary named layer; kdkeras models name theirs `tap_*` (e.g.
`tap_stage1`), in forward order. Because they are layers of the functional
graph, taps survive `.keras` save/load and need no hooks: a multi-output model
over the same layers (and weights) is `keras.Model(model.inputs, [...])`.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

TAP_PREFIX = "tap_"


def functional_graph(model: keras.Model, reader: str = "Tapping") -> keras.Model:
    """The functional graph of a functional or built Sequential model.

    What reads layer calls and shapes from a model (taps here, the MAC count in
    `kdkeras.utils.cost`) gets them from this graph; `reader` names it in the
    error a model without one (a subclassed model) raises.
    """
    if isinstance(model, keras.Model):
        if hasattr(model, "_nodes_by_depth"):
            return model
        if getattr(model, "_functional", None) is not None:  # a built Sequential
            return model._functional
    raise ValueError(
        f"{reader} needs a functional (or built Sequential) keras.Model. "
        f"Received: model {getattr(model, 'name', None)!r} of type {type(model).__name__}"
    )


def _layer_output(model: keras.Model, layer) -> keras.KerasTensor:
    """The output of `layer`'s single call inside `model`'s graph."""
    nodes = [
        node
        for depth_nodes in functional_graph(model)._nodes_by_depth.values()
        for node in depth_nodes
        if node.operation is layer
    ]
    if len(nodes) != 1 or len(nodes[0].output_tensors) != 1:
        raise ValueError(
            f"Layer {layer.name!r} of model {model.name!r} must be called exactly "
            "once in the model and return one tensor to be tapped."
        )
    return nodes[0].output_tensors[0]


def tap_names(model: keras.Model) -> list[str]:
    """Names of the model's `tap_*` layers, in forward order."""
    functional_graph(model)
    return [layer.name for layer in model.layers if layer.name.startswith(TAP_PREFIX)]


def feature_taps(
    model: keras.Model, names: Sequence[str] | None = None
) -> dict[str, keras.KerasTensor]:
    """The symbolic outputs of the named layers of `model`, in the order asked.

    Args:
        model: a functional model.
        names: any layer names of `model` (e.g. of a `keras.applications` model);
            default: all its `tap_*` layers in forward order.

    Returns:
        An ordered dict `{layer name: KerasTensor}`.

    Raises:
        ValueError: a name is not a layer of `model`, is repeated, or the model
            has no `tap_*` layers and no names were given.
    """
    available = tap_names(model)
    if names is None:
        if not available:
            raise ValueError(
                f"Model {model.name!r} has no layers named '{TAP_PREFIX}*'. "
                "Pass the layer names to tap, e.g. names=['block_3_expand_relu']."
            )
        names = available
    names = [names] if isinstance(names, str) else list(names)
    if len(set(names)) != len(names):
        raise ValueError(f"Tap names must be unique. Received: names={list(names)}")
    layers = {layer.name: layer for layer in model.layers}
    unknown = [n for n in names if n not in layers]
    if unknown:
        raise ValueError(
            f"Model {model.name!r} has no layer(s) {unknown}. Its '{TAP_PREFIX}*' "
            f"layers are: {available or 'none'} (any layer name of the model is accepted)."
        )
    return {n: _layer_output(model, layers[n]) for n in names}


def tapped_model(model: keras.Model, names: Sequence[str] | None = None) -> keras.Model:
    """A model over the same layers returning `[logits, tap_1, ..., tap_n]`.

    No layer is rebuilt or copied: the returned model shares every weight with
    `model` (training one trains the other).

    Args:
        model: a functional model with a single output (the logits).
        names: layers to tap, as in `feature_taps`; default its `tap_*` layers.

    Returns:
        A functional `keras.Model` named `{model.name}_tapped` whose output is a
        list: the model's output, then the taps in the order of `names`.
    """
    taps = feature_taps(model, names)
    if len(model.outputs) != 1:
        raise ValueError(
            f"tapped_model needs a single-output model (the logits). Model "
            f"{model.name!r} has {len(model.outputs)} outputs."
        )
    # The graph's own input structure (a tensor, a list or a dict), so the
    # tapped model is called exactly like `model`.
    return keras.Model(
        functional_graph(model).input,
        [model.outputs[0], *taps.values()],
        name=f"{model.name}_tapped",
    )
