"""kdkeras.models: the paper's teachers and students, and their feature taps.

Models take pixels in [0, 255] and normalise them in their first layer,
`InputNormalization` (statistics chosen by `get(..., input_normalization=)`,
saved with the model); `load_teacher(path)` loads a saved model, wrapping one
saved before that contract with the statistics recorded beside it.
`get(name)` builds a registered model (`names()` lists them); `tap_names`,
`feature_taps` and `tapped_model` expose the `tap_*` stage outputs that the
distillation losses read. Importing this package registers the custom layers
(`ZeroPadShortcut`, `FoldedBatchNorm`) so that saved `.keras` files load;
`fold_batch_norms` gives a frozen model's inference copy with its
BatchNormalizations folded into the convolutions before them.
"""

from kdkeras.models.folding import FoldedBatchNorm, fold_batch_norms
from kdkeras.models.normalization import (
    STATISTICS,
    InputNormalization,
    input_statistics,
    load_teacher,
    with_input_normalization,
)
from kdkeras.models.registry import PAPER_PAIRS, Pair, get, names, spec
from kdkeras.models.resnet import ZeroPadShortcut
from kdkeras.models.taps import TAP_PREFIX, feature_taps, tap_names, tapped_model

__all__ = [
    "FoldedBatchNorm",
    "InputNormalization",
    "PAPER_PAIRS",
    "Pair",
    "STATISTICS",
    "TAP_PREFIX",
    "ZeroPadShortcut",
    "feature_taps",
    "fold_batch_norms",
    "get",
    "input_statistics",
    "load_teacher",
    "names",
    "spec",
    "tap_names",
    "tapped_model",
    "with_input_normalization",
]
