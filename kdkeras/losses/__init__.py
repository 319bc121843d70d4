"""Distillation losses: pure functions of tensors in `keras.ops`.

Each returns per-example values of shape (B,) (callers reduce with a mean),
except `rkd_loss`, a batch-level scalar. Feature maps are NHWC; teacher
inputs are fixed targets (wrapped in stop_gradient).

- `gram_matrix`, `cross_layer_pairs`, `gram_loss`: the cross-layer Gram loss
  of Chou, Chiu & Liao (2021) (P1, Eq. 4).
- `kl_divergence`: KL(p_T ‖ p_S) (P2).
- `hinton_kd`: Hinton et al. (2015).
- `multi_teacher_gram_loss` (`mean_teacher_gram_loss` from Gram matrices):
  the K-teacher mean of `gram_loss` with one student Gram per pair;
  `adapted_gram`: a Gram after bias-free 1×1 adapters, W1ᵀ·G·W2.
- `teacher_weighting`: per-example teacher weights (the paper's 1/K, CA-MKD's
  confidence, the closest teacher); `ensemble_kl`: the K-teacher KL as the
  paper's mean of KLs or the KL to the mean teacher.
- `alignment`: orthogonal Procrustes maps of one network's taps onto
  another's; `cka`: linear CKA (Kornblith et al. 2019).
- `fsp_loss`, `multi_teacher_fsp_loss`: Yim et al. (2017).
- `rkd_loss`: Park et al. (2019).
- `svd_loss`: SSKD_SVD, Lee et al. (2018).
- `distillation_losses`: `keras.distillation.DistillationLoss` wrappers
  (imported on demand: `from kdkeras.losses import distillation_losses`).
"""

from kdkeras.losses.alignment import orthogonal_procrustes, rotate_taps, tap_cross_product
from kdkeras.losses.cka import linear_cka
from kdkeras.losses.ensemble_kl import KL_FORMS, ensemble_kl, kl_to_mean_teacher, mean_of_kls
from kdkeras.losses.fsp import FSP_MODES, SQUARED_FSP_MODES, fsp_loss, multi_teacher_fsp_loss
from kdkeras.losses.gram import (POOLS, REDUCTIONS, adaptive_pool2d, cross_layer_pairs,
                                 gram_distance, gram_loss, gram_matrix)
from kdkeras.losses.gram_ensemble import (adapted_gram, mean_teacher_gram_distance,
                                          mean_teacher_gram_loss, multi_teacher_gram_loss,
                                          pair_grams)
from kdkeras.losses.hinton import hinton_kd
from kdkeras.losses.kl import kl_divergence
from kdkeras.losses.rkd import rkd_loss
from kdkeras.losses.svd import SVD_GRADIENTS, SVD_MODES, svd_loss
from kdkeras.losses.teacher_weighting import (WEIGHTINGS, closest_teacher_weights,
                                              confidence_weights, uniform_teacher_weights)

__all__ = [
    "FSP_MODES",
    "KL_FORMS",
    "POOLS",
    "REDUCTIONS",
    "SQUARED_FSP_MODES",
    "SVD_GRADIENTS",
    "SVD_MODES",
    "WEIGHTINGS",
    "adapted_gram",
    "adaptive_pool2d",
    "closest_teacher_weights",
    "confidence_weights",
    "cross_layer_pairs",
    "ensemble_kl",
    "fsp_loss",
    "gram_distance",
    "gram_loss",
    "gram_matrix",
    "hinton_kd",
    "kl_divergence",
    "kl_to_mean_teacher",
    "linear_cka",
    "mean_of_kls",
    "mean_teacher_gram_distance",
    "mean_teacher_gram_loss",
    "multi_teacher_fsp_loss",
    "multi_teacher_gram_loss",
    "orthogonal_procrustes",
    "pair_grams",
    "rkd_loss",
    "rotate_taps",
    "svd_loss",
    "tap_cross_product",
    "uniform_teacher_weights",
]
