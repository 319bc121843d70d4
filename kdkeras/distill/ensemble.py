"""The P3 ensemble variants of issue 16 inside the `Distiller`: teacher weighting, KL form, alignment.

The paper's P3 averages the KL and feature terms over K teachers (Chou, Chiu
& Liao 2021, Eq. 7–8). Averaging the Gram terms of independently
trained teachers pulls the student towards the teachers' mean Gram, which no
network produces (`scripts/diagnose_teacher_grams.py`; `docs/ensemble.md`).
Three `DistillConfig` options change how the K teachers are combined; at their
defaults the Distiller computes exactly the paper's terms (and this module is
not called):

* `teacher_weighting` (`kdkeras.losses.teacher_weighting`): per-example weights
  w_k(x) summing to 1 replace the 1/K of both terms: `"mean"` (the paper),
  `"confidence"` (CA-MKD, Zhang et al. 2022: from each teacher's
  cross-entropy on the label, the same weights for the KL and the feature
  term) or `"closest"` (per term, all weight on the teacher the student is
  nearest on that example).
* `ensemble_kl` (`kdkeras.losses.ensemble_kl`): `"mean_of_kls"` (Eq. 8) or
  `"kl_to_mean"` (KL to the averaged teacher distribution).
* `teacher_alignment="procrustes"` (`kdkeras.losses.alignment`): each
  teacher's taps are rotated onto teacher 0's by a fixed orthogonal map per
  tap, fitted once on training images before the first step (the first
  `ALIGNMENT_IMAGES` images the fit gets; kept in the Distiller's weights, so
  a resumed run keeps its rotations), and the rotated taps enter the feature
  term.

With weights other than 1/K the feature term is taken teacher by teacher
(K student Grams per pair): the weights differ per example and, for
`"closest"`, come from the per-teacher distances themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import keras
import numpy as np
from keras import ops

from kdkeras import losses as kd_losses
from kdkeras.distill import feature_terms
from kdkeras.distill.teacher_outputs import calibration_images

TEACHER_ALIGNMENTS = ("none", "procrustes")
# Training images the Procrustes rotations are fitted on (8 batches of 128).
ALIGNMENT_IMAGES = 1024


def uses_variant(config) -> bool:
    """Whether any ensemble option differs from the paper's default."""
    return (config.teacher_weighting != "mean" or config.ensemble_kl != "mean_of_kls"
            or config.teacher_alignment != "none")


def check_options(config) -> None:
    """One clear error for an ensemble option that is unknown or cannot apply."""
    for name, allowed in (("teacher_weighting", kd_losses.WEIGHTINGS),
                          ("ensemble_kl", kd_losses.KL_FORMS),
                          ("teacher_alignment", TEACHER_ALIGNMENTS)):
        value = getattr(config, name)
        if value not in allowed:
            raise ValueError(f"Invalid {name}={value!r} in DistillConfig. Valid values: {allowed}.")
    if config.teacher_weighting != "mean" and config.feature_loss == "rkd":
        raise ValueError(
            "teacher_weighting weights each example's distance to each teacher, and RKD's loss "
            "is one number per batch (distances and angles between examples). Use "
            f"teacher_weighting='mean' with feature_loss='rkd'. Received: "
            f"teacher_weighting={config.teacher_weighting!r}.")
    if config.teacher_alignment != "none" and config.feature_loss not in ("gram", "fsp"):
        raise ValueError(
            "teacher_alignment rotates the teachers' taps for the Gram (FSP) term; "
            f"feature_loss={config.feature_loss!r} has none to align. Use "
            "teacher_alignment='none' or feature_loss='gram'/'fsp'.")


class TeacherAlignment(keras.layers.Layer):
    """Fixed (c, c) rotations of each teacher's taps onto teacher 0's, and whether they are fitted.

    Non-trainable weights of the Distiller: saved in its checkpoints, read by
    the train step (also JAX's stateless one), identity until fitted.
    """

    def __init__(self, tap_channels: Sequence[Sequence[int]], name: str = "teacher_alignment",
                 **kwargs):
        super().__init__(name=name, trainable=False, **kwargs)
        self.rotations = [[self.add_weight(shape=(c, c), initializer="identity", trainable=False,
                                           name=f"teacher{k}_tap{i}")
                           for i, c in enumerate(channels)]
                          for k, channels in enumerate(tap_channels)]
        self.fitted = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                      name="fitted")
        # Known in Python, so a traced step can refuse unfitted rotations: set by
        # the fit, or by `prepare_fit` from restored weights.
        self.ready = False
        self.built = True

    def is_fitted(self) -> bool:
        """Whether the weights hold fitted rotations (e.g. restored from a checkpoint)."""
        return bool(ops.convert_to_numpy(self.fitted) > 0.5)


def build(config, teacher_views) -> Optional[TeacherAlignment]:
    """Checks the options; the alignment weights when `teacher_alignment` asks for them."""
    check_options(config)
    if config.teacher_alignment == "none" or not config.uses_teachers or not teacher_views:
        return None
    from kdkeras.distill.adapters import tap_channels

    return TeacherAlignment([tap_channels(v) for v in teacher_views])


def fit_teacher_alignment(distiller, images, batch_size: int = 128) -> list:
    """Fits each teacher's per-tap rotation onto teacher 0's on `images`; returns them (NumPy).

    R_k,i = argmin over orthogonal R of ‖T_k,i·R − T_0,i‖_F over every pixel
    of every image (`kdkeras.losses.orthogonal_procrustes`); teacher 0 keeps I.
    `images` are what the teachers are fed in training (the pipeline's output).
    """
    alignment = distiller.teacher_alignment
    if alignment is None:
        raise ValueError("This Distiller has no teacher alignment: build it with "
                         "teacher_alignment='procrustes'.")
    images = np.asarray(images)
    if len(images) == 0:
        raise ValueError("No images to fit the teacher alignment on.")
    cross = None
    for start in range(0, len(images), batch_size):
        taps = [out[1:] for out in distiller.teacher_outputs(images[start:start + batch_size])]
        batch = [[kd_losses.tap_cross_product(t, ref) for t, ref in zip(teacher, taps[0])]
                 for teacher in taps]
        cross = batch if cross is None else [[a + b for a, b in zip(ca, cb)]
                                             for ca, cb in zip(cross, batch)]
    fitted = []
    for k, (per_tap, variables) in enumerate(zip(cross, alignment.rotations)):
        row = []
        for c, v in zip(per_tap, variables):
            r = (np.eye(v.shape[0], dtype="float32") if k == 0
                 else ops.convert_to_numpy(kd_losses.orthogonal_procrustes(c)))
            v.assign(r)
            row.append(np.asarray(r))
        fitted.append(row)
    alignment.fitted.assign(1.0)
    alignment.ready = True
    return fitted


def prepare_fit(distiller, x):
    """Before `Distiller.fit`: fits the alignment on the first training images if not yet fitted."""
    alignment = getattr(distiller, "teacher_alignment", None)
    if alignment is None:
        return x
    if alignment.is_fitted():      # restored with the run's checkpoint: keep those rotations
        alignment.ready = True
    else:
        images = calibration_images(x, ALIGNMENT_IMAGES, "fit the teacher alignment on")
        fit_teacher_alignment(distiller, images)
    return x


def _aligned(d, teacher_feats):
    alignment = d.teacher_alignment
    if alignment is None:
        return teacher_feats
    if not alignment.ready:
        raise ValueError("teacher_alignment='procrustes': the rotations are not fitted. Train "
                         "with Distiller.fit (it fits them first) or call "
                         "kdkeras.distill.ensemble.fit_teacher_alignment(distiller, images).")
    return [kd_losses.rotate_taps(t, [v.value for v in rotations])
            for t, rotations in zip(teacher_feats, alignment.rotations)]


def teacher_terms(d, y, s_logits, s_feats, teacher_outputs):
    """The KL and feature terms (scalars, batch means) under the config's ensemble options.

    `s_logits`, `s_feats`: the student's, float32. `teacher_outputs`: each
    teacher's [logits, taps...] as the teachers return them.
    """
    c = d.config
    t_logits = [ops.cast(ops.stop_gradient(out[0]), "float32") for out in teacher_outputs]
    t_feats = [[ops.cast(ops.stop_gradient(f), "float32") for f in out[1:]]
               for out in teacher_outputs]
    confidence = (kd_losses.confidence_weights(t_logits, y)
                  if c.teacher_weighting == "confidence" else None)
    zero = ops.zeros((), "float32")
    kl = zero
    if c.use_kl:
        weights = confidence
        if c.teacher_weighting == "closest":
            weights = kd_losses.closest_teacher_weights(ops.stack(
                [kd_losses.kl_divergence(t, s_logits, temperature=c.temperature)
                 for t in t_logits], axis=1))
        kl = ops.mean(kd_losses.ensemble_kl(t_logits, s_logits, form=c.ensemble_kl,
                                            weights=weights, temperature=c.temperature))
    feature = zero
    if c.feature_loss is not None:
        t_feats = _aligned(d, t_feats)
        if c.teacher_weighting == "mean":
            feature = feature_terms.feature_term(d, t_feats, s_feats)
        else:
            per_teacher = ops.stack([feature_terms.per_example_feature(d, k, t, s_feats)
                                     for k, t in enumerate(t_feats)], axis=1)   # (B, K)
            weights = (confidence if confidence is not None
                       else kd_losses.closest_teacher_weights(per_teacher))
            feature = ops.mean(ops.sum(weights * per_teacher, axis=1))
    return kl, feature
