"""Training: run configurations and presets, the shared loop, checkpoints, provenance."""

from kdkeras.training.checkpoints import (CheckpointWriteError, RunDirError, prepare_run_dir,
                                          restore_latest)
from kdkeras.training.config import (PRESET_NAMES, DistillRunConfig, TrainConfig,
                                     preset_values, resolve_config)
from kdkeras.training.guards import (NonFiniteGuard, NonFiniteLossError, SignalStop,
                                     TrainingInterrupted, TrainingStopped)
from kdkeras.training.provenance import provenance, write_json_atomic
from kdkeras.training.trainer import fit_in_run_dir, make_optimizer, save_model_atomic
