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
from kdkeras.distill.init_stage import FSP_INIT_FRACTION

FEATURE_LOSSES = (None, "gram", "fsp", "rkd", "svd")
ADAPTER_SIDES = ("teacher", "student", "none")
BETA_TERMS = ("kl+feature", "feature")
# How the frozen teachers run: float32 Keras models (the paper), bfloat16 copies
# (`teacher_precision.reduced_precision_teacher`), or int8 TFLite models run
# ahead of the step in the input pipeline (`teacher_outputs`, TensorFlow only).
TEACHER_PRECISIONS = ("float32", "bfloat16", "int8_ahead")


# A field's annotation -> the types its value may have and how an error names them.
_TYPES = {"str": ((str,), "str"), "Optional[str]": ((str, type(None)), "str or None"),
          "bool": ((bool,), "bool"), "int": ((int,), "int"), "float": ((int, float), "float"),
          "Union[int, tuple]": ((int, tuple), "int or tuple")}


def _expected_type(value, annotation: str):
    """None if `value` fits the annotation, else its types (a bool is only a bool)."""
    kinds, name = _TYPES[annotation]
    ok = (bool in kinds) if isinstance(value, bool) else isinstance(value, kinds)
    return None if ok else name


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
      gram_reduction: how the squared Gram differences are reduced
        (`kdkeras.losses.gram_loss`): `"mean_over_pairs"` is Eq. 4 as printed
        (each Gram's m×n entries summed, then the mean over the B pairs);
        `"sum"` adds the pairs' sums (B × Eq. 4); `"mean"` (every preset)
        averages each pair over its m×n entries and adds the pairs, which
        keeps one λ stable across tap widths (`gram_loss` says why).
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
      init_stage_fraction: the share of the run's epochs given to an
        initialisation stage trained on the feature term alone, after which
        the feature term is dropped and CE (with KL if `use_kl`) trains alone:
        two-stage FSP as Yim et al., RepDistiller and sseung0703 run it
        (`kdkeras.distill.init_stage`). 0 (default): one joint stage.
        The `fsp*` presets use `init_stage.FSP_INIT_FRACTION` (30/240).
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
    init_stage_fraction: float = 0.0

    def __post_init__(self):
        wrong = [f"{name}={value!r} (expected {expected})" for name, value, expected in (
            (f.name, getattr(self, f.name), _expected_type(getattr(self, f.name), f.type))
            for f in dataclasses.fields(self)) if expected]
        if wrong:   # one message for every mistyped field (e.g. from a JSON file)
            raise ValueError(f"DistillConfig: wrong type of {', '.join(wrong)}.")
        from kdkeras.losses import FSP_MODES, GRAM_LOSS_REDUCTIONS

        for name, allowed in (("feature_loss", FEATURE_LOSSES), ("beta_mode", BETA_MODES),
                              ("beta_terms", BETA_TERMS), ("adapter_side", ADAPTER_SIDES),
                              ("pool", ("avg", "max")), ("gram_reduction", GRAM_LOSS_REDUCTIONS),
                              ("teacher_precision", TEACHER_PRECISIONS),
                              ("fsp_mode", tuple(FSP_MODES))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"Invalid {name}={getattr(self, name)!r} in DistillConfig. "
                                 f"Valid values: {allowed}.")
        fraction = self.init_stage_fraction
        if not 0 <= fraction < 1:
            raise ValueError("DistillConfig.init_stage_fraction must be in [0, 1). "
                             f"Received: init_stage_fraction={fraction!r}.")
        if fraction and self.feature_loss is None:
            raise ValueError("DistillConfig.init_stage_fraction > 0 trains the feature term "
                             "alone first, and this config has none (feature_loss=None). "
                             f"Received: init_stage_fraction={fraction!r}.")
        depths = (self.cross_depth,) if isinstance(self.cross_depth, int) else self.cross_depth
        if not depths or any(isinstance(d, bool) or not isinstance(d, int) or d < 1
                             for d in depths):
            raise ValueError(f"Invalid cross_depth={self.cross_depth!r} in DistillConfig. Valid "
                             "values: a positive int or a tuple of positive ints.")
        for name in ("gram_weight", "temperature", "kl_weight", "ce_weight",
                     "feature_weight", "rkd_distance_weight", "rkd_angle_weight"):
            value = getattr(self, name)
            if math.isnan(value) or value < 0:
                raise ValueError(
                    f"DistillConfig.{name} must be a non-negative number. Received: {name}={value!r}.")
            if math.isinf(value):
                raise ValueError(
                    f"DistillConfig.{name} must be finite. Received: {name}={value!r}.")
        if self.temperature == 0:
            raise ValueError("DistillConfig.temperature must be > 0. Received: temperature=0.")
        if self.svd_k < 1:
            raise ValueError(f"DistillConfig.svd_k must be >= 1. Received: svd_k={self.svd_k}.")

    @property
    def uses_teachers(self) -> bool:
        return self.use_kl or self.feature_loss is not None

    def replace(self, **changes) -> "DistillConfig":
        return dataclasses.replace(self, **changes)


_HINTON_T, _HINTON_ALPHA = 4.0, 0.9
_FSP = dict(feature_loss="fsp", cross_depth=1, use_kl=False, beta_mode="off")

# The paper's method and its baselines. β is a factor of its own: only "ours"
# has it on (SSKD_SVD keeps the gradient clip of its original code, sseung0703's
# rule). FSP is two-stage as in its references (`init_stage`); "fsp_joint" is
# the one-stage variant (FSP + CE from the first epoch), a kdkeras option.
# "p1"/"p1_p2" are the paper's parts with its Gram loss, trained jointly;
# the ablation tables build their P1/P2/P3 rows on the FSP baseline instead
# (`kdkeras.reproduce.tables`, "under the same conditions as FSP").
METHODS: dict[str, dict] = {
    "student": dict(feature_loss=None, use_kl=False, beta_mode="off"),
    "hinton": dict(feature_loss=None, use_kl=True, temperature=_HINTON_T,
                   kl_weight=_HINTON_ALPHA * _HINTON_T ** 2, ce_weight=1 - _HINTON_ALPHA,
                   beta_mode="off"),
    "fsp": dict(_FSP, init_stage_fraction=FSP_INIT_FRACTION),
    "fsp_joint": dict(_FSP),
    "fsp_kl": dict(_FSP, use_kl=True, init_stage_fraction=FSP_INIT_FRACTION),
    "rkd": dict(feature_loss="rkd", use_kl=False, beta_mode="off"),
    "sskd_svd": dict(feature_loss="svd", use_kl=False, beta_mode="sseung0703"),
    # The paper's ablation parts: P1 alone, P1+P2; P3 is the number of teachers.
    "p1": dict(feature_loss="gram", cross_depth=3, use_kl=False, beta_mode="off"),
    "p1_p2": dict(feature_loss="gram", cross_depth=3, use_kl=True, beta_mode="off"),
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
