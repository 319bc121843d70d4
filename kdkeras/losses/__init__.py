"""Distillation losses: pure functions of tensors in `keras.ops`.

Each returns per-example values of shape (B,) (callers reduce with a mean),
except `rkd_loss`, a batch-level scalar. Feature maps are NHWC; teacher
inputs are fixed targets (wrapped in stop_gradient).

- `gram_matrix`, `cross_layer_pairs`, `gram_loss`: the cross-layer Gram loss
  of Chou, Chiu & Liao (2021) (P1: Gram Eq. 1, loss Eq. 4).
- `kl_divergence`: KL(p_T ‖ p_S) (P2).
- `hinton_kd`: Hinton et al. (2015).
- `multi_teacher_gram_loss` (`mean_teacher_gram_loss` from Gram matrices):
  the K-teacher mean of `gram_loss` with one student Gram per pair;
  `adapted_gram`: a Gram after bias-free 1×1 adapters, W1ᵀ·G·W2.
- `fsp_loss`, `multi_teacher_fsp_loss`: Yim et al. (2017).
- `rkd_loss`: Park et al. (2019).
- `svd_loss`: SSKD_SVD, Lee et al. (2018).
- `distillation_losses`: `keras.distillation.DistillationLoss` wrappers
  (imported on demand: `from kdkeras.losses import distillation_losses`).
"""

from kdkeras.losses.fsp import FSP_MODES, SQUARED_FSP_MODES, fsp_loss, multi_teacher_fsp_loss
from kdkeras.losses.gram import (GRAM_LOSS_REDUCTIONS, POOLS, REDUCTIONS, adaptive_pool2d,
                                 cross_layer_pairs, gram_distance, gram_loss, gram_matrix,
                                 pair_reduction)
from kdkeras.losses.gram_ensemble import (adapted_gram, mean_teacher_gram_distance,
                                          mean_teacher_gram_loss, multi_teacher_gram_loss,
                                          pair_grams)
from kdkeras.losses.hinton import hinton_kd
from kdkeras.losses.kl import kl_divergence
from kdkeras.losses.rkd import rkd_loss
from kdkeras.losses.svd import SVD_GRADIENTS, SVD_MODES, svd_loss

__all__ = [
    "FSP_MODES",
    "GRAM_LOSS_REDUCTIONS",
    "POOLS",
    "REDUCTIONS",
    "SQUARED_FSP_MODES",
    "SVD_GRADIENTS",
    "SVD_MODES",
    "adapted_gram",
    "adaptive_pool2d",
    "cross_layer_pairs",
    "fsp_loss",
    "gram_distance",
    "gram_loss",
    "gram_matrix",
    "hinton_kd",
    "kl_divergence",
    "mean_teacher_gram_distance",
    "mean_teacher_gram_loss",
    "multi_teacher_fsp_loss",
    "multi_teacher_gram_loss",
    "pair_grams",
    "pair_reduction",
    "rkd_loss",
    "svd_loss",
]
