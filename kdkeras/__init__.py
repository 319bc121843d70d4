"""kdkeras: knowledge distillation for Keras 3.

Reproduces Chou, Chiu & Liao, "Cross-layer knowledge distillation with KL
divergence and offline ensemble for compressing deep neural network" (APSIPA
Trans. Signal Inf. Process., 2021): cross-layer Gram losses, KL, K-teacher
offline ensembles and the sigmoid-β gradient split, with its baselines.

Importing kdkeras registers its custom layers, so a saved student `.keras`
file opens with `keras.saving.load_model` after `import kdkeras`.
"""

__version__ = "0.1.0"

from kdkeras import losses, models  # noqa: E402,F401  (registers serializable layers)
from kdkeras import distill  # noqa: E402,F401
