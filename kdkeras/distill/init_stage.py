"""The initialisation stage of two-stage FSP (Yim et al. 2017), gated by the live epoch.

Yim, Joo, Bae & Kim (2017) train FSP in two stages: the student first learns
to match the teacher's FSP matrices alone, then trains on the main task.
Their public re-implementations do the same: RepDistiller
(`train_student.py` / `helper/loops.py`: `init()` trains on the FSP loss for
`init_epochs` = 30 before the 240 main epochs, whose `loss_kd` is then 0) and
sseung0703/KD_methods_with_TF (`op_util.Optimizer_w_Initializer`: a
distillation-only train op for the first epochs, then CE alone). kdkeras's
`DistillConfig.init_stage_fraction` > 0 gives that schedule:

  * epochs p < n: the feature term alone (no CE, no KL); weight decay stays;
  * epochs p >= n: CE (and the KL term, if `use_kl`) without the feature term,

with n = `init_stage_epochs(config, epochs)` = round(fraction × epochs), at
least 1. The stage is carved out of the run's epochs, not added to them
(RepDistiller adds 30 epochs at a constant learning rate before its 240): every
row of a table then runs the same schedule (same epochs and learning-rate
decay), which the controlled comparisons of `kdkeras.reproduce.tables` need.
`FSP_INIT_FRACTION` = 30/240 is RepDistiller's ratio, so the stage scales with
the preset (25 of 200 epochs for `paper`, 3 of 20 for `fast`, 1 for `smoke`).

The switch is read live from the Distiller's epoch variable (like β's p), so
one compiled step serves both stages on TensorFlow and JAX, and a resumed run
picks up in the right stage. The length needs the run's epochs: `Distiller.fit`
sets it from its `epochs` argument (`set_stage_epochs`).
"""

from __future__ import annotations

import math

from keras import ops

# RepDistiller's FSP initialisation: 30 epochs for a 240-epoch main schedule.
FSP_INIT_FRACTION = 30 / 240


def init_stage_epochs(config, epochs: int) -> int:
    """The initialisation stage's length for a run of `epochs` epochs (0: no stage)."""
    if not config.init_stage_fraction:
        return 0
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"A run's epochs must be a positive int. Received: epochs={epochs!r}")
    return min(epochs, max(1, math.floor(config.init_stage_fraction * epochs + 0.5)))


def set_stage_epochs(distiller, epochs: int) -> None:
    """Fixes the stage length of `distiller` for a run of `epochs` epochs (before tracing)."""
    length = init_stage_epochs(distiller.config, epochs)
    if getattr(distiller, "_init_stage_epochs", None) not in (None, length):
        # The compiled step holds the length as a constant: retrace for the new one.
        distiller.train_function = None
    object.__setattr__(distiller, "_init_stage_epochs", length)


def gate_terms(distiller, ce, kl, feature):
    """(ce, kl, feature) with the stage's switch applied; unchanged without a stage."""
    if not distiller.config.init_stage_fraction:
        return ce, kl, feature
    length = getattr(distiller, "_init_stage_epochs", None)
    if length is None:
        raise ValueError(
            f"Method {distiller.config.method!r} has an initialisation stage "
            f"(init_stage_fraction={distiller.config.init_stage_fraction}) whose length "
            "depends on the run's epochs: train with Distiller.fit(..., epochs=N), or call "
            "kdkeras.distill.init_stage.set_stage_epochs(distiller, N) first.")
    in_stage = ops.cast(ops.less(distiller.epoch, float(length)), "float32")
    return ce * (1.0 - in_stage), kl * (1.0 - in_stage), feature * in_stage
