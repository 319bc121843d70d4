"""`DistillConfig`: every switch of the paper's method, and the methods as presets.

A method is nothing but a `DistillConfig`: the student trained alone, Hinton KD,
FSP, RKD, SSKD_SVD and the paper's full method all run through the same
`Distiller` (house style rule 4). `method_config("ours", cross_depth=2)` gives the
preset with one switch changed.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Union

from kdkeras.distill.beta import BETA_MODES

FEATURE_LOSSES = (None, "gram", "fsp", "rkd", "svd")
ADAPTER_SIDES = ("teacher", "student", "none")
BETA_TERMS = ("kl+feature", "feature")
# How the frozen teachers run: float32 Keras models (the paper), bfloat16 copies
# (`teacher_precision.reduced_precision_teacher`), or int8 TFLite models run
# ahead of the step in the input pipeline (`teacher_outputs`, TensorFlow only).
TEACHER_PRECISIONS = ("float32", "bfloat16", "int8_ahead")


@dataclasses.dataclass(frozen=True)
class DistillConfig:
    """The loss configuration of a `Distiller`.

    Attributes:
      method: name of the preset this came from (for the logs).
      feature_loss: `"gram"` (the paper's cross-layer Gram loss, Eq. 4),
        `"fsp"` (Yim et al. 2017), `"rkd"` (Park et al. 2019), `"svd"`
        (SSKD_SVD, Lee et al. 2018) or None.
      cross_depth: P1. An int d uses the tap pairs at distances 1..d (1 = FSP's
        adjacent pairs, 3 = the paper's "P1 (cross three layers)", 4 for
        MobileNet); a tuple uses exactly those distances (e.g. (2,) = cross-two).
      gram_weight: λ of Eq. 4, equal for every pair.
      gram_reduction: `"mean"` averages the squared Gram differences over the
        m×n entries; `"sum"` is Eq. 4's plain sum of squares (see
        `kdkeras.losses.gram_loss` for why the default averages).
      pool: how the larger map of a pair is pooled to the smaller (`"avg"`|`"max"`).
      use_kl: P2, KL(p_T‖p_S) on the softmax outputs.
      temperature: softmax temperature of the KL term (1 in the paper).
      kl_weight: weight of the KL term (Hinton KD: α·T²).
      ce_weight: weight of the cross-entropy term (Hinton KD: 1−α).
      feature_weight: weight of the feature term (the Gram loss has λ inside).
      beta_mode: `"paper"`, `"inverted"`, `"sseung0703"` or `"off"` (see
        `kdkeras.distill.beta`).
      beta_terms: which terms form ∇KD for β: `"kl+feature"` (default) or
        `"feature"` (KL joins the CE side).
      epoch_origin: p = Keras epoch (0-based) + epoch_origin.
      adapter_side: where the 1×1 conv adapters go when channel counts differ:
        `"teacher"` (the paper: teacher taps mapped to the student's channels),
        `"student"` (student taps mapped to the teacher's) or `"none"`.
      always_adapt: add adapters even where the channel counts already match.
      rkd_distance_weight, rkd_angle_weight: RKD's weights (25 and 50 in Park et al.).
      svd_k: number of singular vectors kept by SSKD_SVD.
      fsp_mode: the FSP convention (`kdkeras.losses.FSP_MODES`). Default
        `"sseung0703"` (2×2 max-pool, ½‖·‖²×1e-3): the TF code whose baselines the
        paper appears to use; `"paper"` (Yim et al.'s plain sum of squares)
        diverged to inf in the first epoch of a ResNet-32 → ResNet-8 run here.
      teacher_precision: how the frozen teachers run (`TEACHER_PRECISIONS`):
        `"float32"` (default, the paper), `"bfloat16"` (bfloat16 copies of the
        teachers) or `"int8_ahead"` (int8 TFLite teachers calibrated on the
        first training batches and run in the input pipeline by
        `Distiller.fit`; TensorFlow backend). Either changes the teachers'
        outputs by their round-off; losses, Grams and the student stay float32.
      teacher_weighting, ensemble_kl, teacher_alignment: how P3 combines the
        K teachers (issue 16; `kdkeras.distill.ensemble`, `docs/ensemble.md`).
        `teacher_weighting`: `"mean"` (the paper's 1/K), `"confidence"`
        (CA-MKD, Zhang et al. 2022: per-example weights from each teacher's
        cross-entropy on the label, for the KL and the feature term) or
        `"closest"` (per example and term, the teacher nearest the student).
        `ensemble_kl`: `"mean_of_kls"` (the paper's Eq. 8) or `"kl_to_mean"`
        (KL to the averaged teacher distribution; the same gradient).
        `teacher_alignment`: `"none"` or `"procrustes"` (each teacher's taps
        rotated onto teacher 0's by a per-tap orthogonal map fitted on the
        first training images before the feature term averages them).
    """

    method: str = "ours"
    feature_loss: Optional[str] = "gram"
    cross_depth: Union[int, tuple] = 3
    gram_weight: float = 1.0
    gram_reduction: str = "mean"
    pool: str = "avg"
    use_kl: bool = True
    temperature: float = 1.0
    kl_weight: float = 1.0
    ce_weight: float = 1.0
    feature_weight: float = 1.0
    beta_mode: str = "paper"
    beta_terms: str = "kl+feature"
    epoch_origin: int = 0
    adapter_side: str = "teacher"
    always_adapt: bool = False
    rkd_distance_weight: float = 25.0
    rkd_angle_weight: float = 50.0
    svd_k: int = 1
    fsp_mode: str = "sseung0703"
    teacher_precision: str = "float32"
    # Issue 16's P3 variants (checked by kdkeras.distill.ensemble.check_options when
    # the Distiller is built); the defaults are the paper's terms.
    teacher_weighting: str = "mean"
    ensemble_kl: str = "mean_of_kls"
    teacher_alignment: str = "none"

    def __post_init__(self):
        def bad(field, allowed):
            value = getattr(self, field)
            raise ValueError(
                f"Invalid {field}={value!r} in DistillConfig. Valid values: {allowed}.")

        if self.feature_loss not in FEATURE_LOSSES:
            bad("feature_loss", FEATURE_LOSSES)
        if self.beta_mode not in BETA_MODES:
            bad("beta_mode", BETA_MODES)
        if self.beta_terms not in BETA_TERMS:
            bad("beta_terms", BETA_TERMS)
        if self.adapter_side not in ADAPTER_SIDES:
            bad("adapter_side", ADAPTER_SIDES)
        if self.pool not in ("avg", "max"):
            bad("pool", ("avg", "max"))
        if self.gram_reduction not in ("mean", "sum"):
            bad("gram_reduction", ("mean", "sum"))
        if self.teacher_precision not in TEACHER_PRECISIONS:
            bad("teacher_precision", TEACHER_PRECISIONS)
        depths = (self.cross_depth,) if isinstance(self.cross_depth, int) else self.cross_depth
        if not depths or any(not isinstance(d, int) or d < 1 for d in depths):
            bad("cross_depth", "a positive int or a tuple of positive ints")
        for name in ("gram_weight", "temperature", "kl_weight", "ce_weight",
                     "feature_weight", "rkd_distance_weight", "rkd_angle_weight"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or math.isnan(value) or value < 0:
                raise ValueError(
                    f"DistillConfig.{name} must be a non-negative number. Received: {name}={value!r}.")
        if self.temperature == 0:
            raise ValueError("DistillConfig.temperature must be > 0. Received: temperature=0.")
        from kdkeras.losses import FSP_MODES

        if self.fsp_mode not in FSP_MODES:
            bad("fsp_mode", tuple(FSP_MODES))
        if self.svd_k < 1:
            raise ValueError(f"DistillConfig.svd_k must be >= 1. Received: svd_k={self.svd_k}.")

    @property
    def uses_teachers(self) -> bool:
        return self.use_kl or self.feature_loss is not None

    def replace(self, **changes) -> "DistillConfig":
        return dataclasses.replace(self, **changes)


_HINTON_T, _HINTON_ALPHA = 4.0, 0.9

# The paper's method and its baselines. Baselines keep β off except SSKD_SVD,
# whose original code (sseung0703) clips its distillation gradient by its rule.
METHODS: dict[str, dict] = {
    "student": dict(feature_loss=None, use_kl=False, beta_mode="off"),
    "hinton": dict(feature_loss=None, use_kl=True, temperature=_HINTON_T,
                   kl_weight=_HINTON_ALPHA * _HINTON_T ** 2, ce_weight=1 - _HINTON_ALPHA,
                   beta_mode="off"),
    "fsp": dict(feature_loss="fsp", cross_depth=1, use_kl=False, beta_mode="off"),
    "fsp_kl": dict(feature_loss="fsp", cross_depth=1, use_kl=True, beta_mode="off"),
    "rkd": dict(feature_loss="rkd", use_kl=False, beta_mode="off"),
    "sskd_svd": dict(feature_loss="svd", use_kl=False, beta_mode="sseung0703"),
    # The paper's ablation parts: P1 alone, P1+P2; P3 is the number of teachers.
    "p1": dict(feature_loss="gram", cross_depth=3, use_kl=False),
    "p1_p2": dict(feature_loss="gram", cross_depth=3, use_kl=True),
    "ours": dict(feature_loss="gram", cross_depth=3, use_kl=True, beta_mode="paper"),
}


def method_names() -> list[str]:
    return list(METHODS)


def method_config(method: str, **overrides) -> DistillConfig:
    """The `DistillConfig` of a named method, with `overrides` applied."""
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}. Valid methods: {', '.join(METHODS)}.")
    fields = {f.name for f in dataclasses.fields(DistillConfig)}
    unknown = set(overrides) - fields
    if unknown:
        raise ValueError(
            f"Unknown DistillConfig option(s) {sorted(unknown)}. Valid options: {sorted(fields)}.")
    return DistillConfig(method=method, **{**METHODS[method], **overrides})
