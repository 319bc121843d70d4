"""kdkeras loss terms as `keras.distillation.DistillationLoss`es.

For users of Keras's built-in single-teacher `keras.distillation.Distiller`
(Keras >= 3.12), which combines `student_loss_weight · CE + (1 −
student_loss_weight) · Σ_i w_i · loss_i.compute_loss(teacher_out, student_out)`
and needs each `compute_loss` to return a scalar. (kdkeras's own
`kdkeras.distill.Distiller` handles K teachers and the paper's β step.)

    teacher = with_tap_bundle(teacher_model)   # the same layers and weights
    student = with_tap_bundle(student_model)
    distiller = keras.distillation.Distiller(
        teacher=teacher, student=student,
        distillation_losses=[KLDistillation(), GramDistillation(depth=3)],
        student_loss_weight=0.5)
    distiller.compile(optimizer="sgd",
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    distiller.fit(x, y)   # student_model's weights are trained

Why `with_tap_bundle`: Keras's Distiller hands a loss the output of ONE named
layer per model (`teacher_layer_name` / `student_layer_name`), while a Gram
matrix needs two taps of the same model. `with_tap_bundle` rebuilds the
functional model (same layers, same weights, same logits output) with one
identity layer, `kd_taps`, whose outputs are `[logits, tap_1, ..., tap_n]`.
Keras's Distiller then runs the student twice per step (once for the logits,
once for the features): a cost of the built-in class.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Optional, Sequence, Union

import keras
from keras import ops

from kdkeras.losses.gram import GRAM_LOSS_REDUCTIONS, POOLS, check_choice, cross_layer_pairs, gram_loss
from kdkeras.losses.kl import kl_divergence

Tensor = Any
TAP_PREFIX = "tap_"


@keras.saving.register_keras_serializable(package="kdkeras")
class TapBundle(keras.layers.Layer):
    """Identity on a list `[logits, tap_1, ..., tap_n]`: gathers the taps at one layer."""

    def call(self, inputs):
        return list(inputs)

    def compute_output_spec(self, inputs):
        return [keras.KerasTensor(x.shape, dtype=x.dtype) for x in inputs]


def with_tap_bundle(model: keras.Model, tap_names: Optional[Sequence[str]] = None,
                    name: str = "kd_taps") -> keras.Model:
    """The same functional model, with a `TapBundle` layer `name` over its taps.

    Args:
      model: a functional model with one output, the logits.
      tap_names: layers whose outputs are the taps, in forward order; default
        the model's `tap_*` layers (the kdkeras convention).
      name: name of the bundle layer (what `GramDistillation.tap_layer_name` names).

    Returns:
      A `keras.Model` over the same layers (weights are shared, so training it
      trains `model`) whose output is still the logits.
    """
    if not getattr(model, "inputs", None) or len(model.outputs) != 1:
        raise ValueError("`model` must be a functional model with a single (logits) output. "
                         f"Received: {model!r}")
    names = list(tap_names) if tap_names is not None else [
        layer.name for layer in model.layers if layer.name.startswith(TAP_PREFIX)]
    if not names:
        raise ValueError(f"Model {model.name!r} has no `{TAP_PREFIX}*` layers; pass `tap_names`.")
    taps = [model.get_layer(n).output for n in names]
    outputs = TapBundle(name=name)([model.outputs[0], *taps])
    return keras.Model(model.input, outputs[0], name=model.name)


@keras.saving.register_keras_serializable(package="kdkeras")
class KLDistillation(keras.distillation.DistillationLoss):
    """Batch mean of `kl_divergence`: KL(p_T ‖ p_S) on the final (logits) outputs.

    The paper's P2 (Chou, Chiu & Liao 2021) at `temperature=1`. With
    `scale_by_t2=True` (default) the term is multiplied by T², as Hinton et
    al. (2015) and Keras's own `LogitsDistillation` do (a no-op at T = 1).

    Args:
      temperature: softmax temperature T > 0 (default 1, the paper).
      scale_by_t2: multiply by T² (default True).
      from_logits: False if the models end in a softmax.
    """

    def __init__(self, temperature: float = 1.0, scale_by_t2: bool = True,
                 from_logits: bool = True):
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature <= 0:
            raise ValueError(f"`temperature` must be a positive number. Received: temperature={temperature!r}")
        self.temperature = float(temperature)
        self.scale_by_t2 = bool(scale_by_t2)
        self.from_logits = bool(from_logits)
        self.teacher_layer_name = None
        self.student_layer_name = None

    def compute_loss(self, teacher_outputs: Tensor, student_outputs: Tensor, **kwargs) -> Tensor:
        kl = ops.mean(kl_divergence(teacher_outputs, student_outputs, self.temperature,
                                    from_logits=self.from_logits))
        return kl * self.temperature ** 2 if self.scale_by_t2 else kl

    def get_config(self) -> dict:
        return {"temperature": self.temperature, "scale_by_t2": self.scale_by_t2,
                "from_logits": self.from_logits}

    @classmethod
    def from_config(cls, config: dict) -> "KLDistillation":
        return cls(**config)


@keras.saving.register_keras_serializable(package="kdkeras")
class GramDistillation(keras.distillation.DistillationLoss):
    """Batch mean of `gram_loss`, the cross-layer Gram loss (Eq. 4), on bundled taps.

    Teacher and student must carry a `TapBundle` layer named `tap_layer_name`
    (see `with_tap_bundle`), over the same number of taps with matching
    channel counts per tap.

    Args:
      depth: which tap pairs, as `cross_layer_pairs`: an int d = distances
        1..d (default 3, the paper's "P1 (cross three layers)"; 1 = FSP's
        pairs), or a collection of exact distances, e.g. (2,).
      tap_layer_name: the bundle layer's name in both models.
      reduction: `"mean"` (default), `"sum"` or `"mean_over_pairs"` (Eq. 4 as
        printed), see `gram_loss`.
      weight: λ, equal for every pair.
      pool: `"avg"` (default) or `"max"`, see `gram_matrix`.
    """

    def __init__(self, depth: Union[int, Iterable[int]] = 3, tap_layer_name: str = "kd_taps",
                 reduction: str = "mean", weight: float = 1.0, pool: str = "avg"):
        check_choice("reduction", reduction, GRAM_LOSS_REDUCTIONS)
        check_choice("pool", pool, POOLS)
        self.depth = depth if isinstance(depth, int) else tuple(sorted(depth))
        self.tap_layer_name = tap_layer_name
        self.teacher_layer_name = tap_layer_name
        self.student_layer_name = tap_layer_name
        self.reduction = reduction
        self.weight = float(weight)
        self.pool = pool

    def _taps(self, outputs: Sequence[Tensor], who: str) -> list:
        if not isinstance(outputs, (list, tuple)) or len(outputs) < 3:
            raise ValueError(f"The {who}'s `{self.tap_layer_name}` output must be [logits, tap_1, "
                             f"tap_2, ...] (see `with_tap_bundle`). Received: {outputs!r}")
        return list(outputs[1:])

    def validate_model_compatibility(self, teacher: keras.Model, student: keras.Model) -> None:
        sizes = []
        for who, model in (("teacher", teacher), ("student", student)):
            try:
                layer = model.get_layer(self.tap_layer_name)
            except ValueError as e:
                raise ValueError(f"The {who} has no `{self.tap_layer_name}` layer; wrap it with "
                                 f"`with_tap_bundle`. ({e})") from e
            if not isinstance(layer, TapBundle):
                raise ValueError(f"The {who}'s `{self.tap_layer_name}` layer is a "
                                 f"{type(layer).__name__}, not a TapBundle; see `with_tap_bundle`.")
            sizes.append(len(layer.output) - 1)
        if sizes[0] != sizes[1]:
            raise ValueError(f"Teacher and student bundle {sizes[0]} and {sizes[1]} taps; they must match.")
        cross_layer_pairs(list(range(sizes[0])), self.depth)  # raises on a bad depth

    def validate_outputs(self, teacher_outputs, student_outputs) -> None:
        t, s = self._taps(teacher_outputs, "teacher"), self._taps(student_outputs, "student")
        if len(t) != len(s):
            raise ValueError(f"Teacher and student give {len(t)} and {len(s)} taps; they must match.")

    def compute_loss(self, teacher_outputs: Tensor, student_outputs: Tensor, **kwargs) -> Tensor:
        t, s = self._taps(teacher_outputs, "teacher"), self._taps(student_outputs, "student")
        pairs = cross_layer_pairs(list(range(len(s))), self.depth)
        return ops.mean(gram_loss(t, s, pairs, reduction=self.reduction, weight=self.weight,
                                  pool=self.pool))

    def get_config(self) -> dict:
        return {"depth": self.depth if isinstance(self.depth, int) else list(self.depth),
                "tap_layer_name": self.tap_layer_name, "reduction": self.reduction,
                "weight": self.weight, "pool": self.pool}

    @classmethod
    def from_config(cls, config: dict) -> "GramDistillation":
        return cls(**config)
