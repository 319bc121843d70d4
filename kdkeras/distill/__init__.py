"""Distillation: the `Distiller`, its configuration, the β step, adapters and the P3 variants."""

from kdkeras.distill.beta import BETA_MODES, beta_scale, combine_gradients, global_norm
from kdkeras.distill.config import METHODS, DistillConfig, method_config, method_names
from kdkeras.distill.distiller import Distiller
