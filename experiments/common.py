"""Flags shared by the experiment scripts, and their mapping onto config dataclasses.

Every flag defaults to None, meaning "the preset's value", so a preset sets the
schedule and any flag given on the command line overrides it.
"""

from __future__ import annotations

import os
import sys

from absl import flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

FLAGS = flags.FLAGS


def define_schedule_flags() -> None:
    """The preset and the overrides of its schedule and scale (every script has them)."""
    from kdkeras.training.config import PRESET_NAMES

    flags.DEFINE_enum("preset", "fast", list(PRESET_NAMES), "Schedule preset.")
    flags.DEFINE_integer("epochs", None, "Epochs (default: the preset's).")
    flags.DEFINE_integer("batch_size", None, "Batch size (default: the preset's).")
    flags.DEFINE_integer("lr_decay_every", None, "Decay the learning rate every N epochs.")
    flags.DEFINE_integer("train_subset", None, "Train on this many examples (class-balanced).")
    flags.DEFINE_integer("test_subset", None, "Evaluate on this many test examples.")
    flags.DEFINE_boolean("jit_compile", None, "Compile the train step with XLA "
                         "(pays on GPUs; slower on CPUs: see docs).")


def define_common_flags(default_model: str) -> None:
    define_schedule_flags()
    flags.DEFINE_string("model", default_model, "Registry model name (the student for distill.py).")
    flags.DEFINE_string("dataset", None,
                        "cifar100 (tensorflow-datasets), image_folder, cifar10_jpeg or imagenet64. "
                        "Default: image_folder if --data_dir holds <split>/<class>/ folders, "
                        "else cifar100.")
    flags.DEFINE_string("data_dir", None, "Local data: an image folder, a CIFAR-100 copy or "
                        "the ImageNet64 npz directory.")
    flags.DEFINE_string("workdir", None, "Run directory (model, config, history, checkpoints).")
    flags.DEFINE_integer("seed", 0, "Random seed.")
    flags.DEFINE_float("learning_rate", None, "Initial learning rate (paper: 1e-2).")
    flags.DEFINE_float("momentum", None, "Nesterov momentum (paper: 0.9).")
    flags.DEFINE_float("weight_decay", None, "Coupled L2 weight decay (paper: 1e-4).")
    flags.DEFINE_float("lr_decay_factor", None, "Learning-rate decay factor (paper: 0.1).")
    flags.DEFINE_boolean("augment", None, "Random shift, rotation and flip (default on).")
    flags.DEFINE_string("strategy", None, "tf.distribute strategy: default, mirrored (all GPUs, "
                        "else all logical CPUs), mirrored:N (N GPUs, else the CPU split in N) or "
                        "multiworker (several machines, from TF_CONFIG: docs/distributed.md).")
    flags.DEFINE_enum("mixed_precision", None, ["float16", "bfloat16"],
                      "Compute in mixed_float16 or mixed_bfloat16 (losses and Grams stay float32).")
    flags.DEFINE_enum("on_nonfinite", None, ["stop", "skip"],
                      "A NaN/Inf loss term: stop the run (default; the last good checkpoint is "
                      "kept) or skip that step's update and count it.")
    flags.DEFINE_boolean("resume", False, "Continue the run in --workdir from its last checkpoint.")
    flags.DEFINE_boolean("overwrite", False, "Replace the run in --workdir.")
    flags.DEFINE_integer("verbose", None, "Keras fit verbosity (0, 1 or 2).")


def infer_dataset(dataset, data_dir) -> str:
    if dataset:
        return dataset
    if data_dir and os.path.isdir(os.path.join(data_dir, "train")):
        return "image_folder"
    return "cifar100"


def common_overrides() -> dict:
    """The config overrides the shared flags give.

    Also readies what must precede TensorFlow's first op: the devices of
    `--strategy` (the CPU split for mirrored:N without GPUs) and the global
    dtype policy of `--mixed_precision`.
    """
    names = ["model", "data_dir", "workdir", "seed", "epochs", "batch_size", "learning_rate",
             "momentum", "weight_decay", "lr_decay_factor", "lr_decay_every", "train_subset",
             "test_subset", "augment", "jit_compile", "strategy", "on_nonfinite", "resume",
             "overwrite", "verbose"]
    if FLAGS.strategy:
        from kdkeras.training.strategy import prepare_devices

        prepare_devices(FLAGS.strategy)
    if FLAGS.mixed_precision:
        import keras

        keras.mixed_precision.set_global_policy(f"mixed_{FLAGS.mixed_precision}")
    return {n: getattr(FLAGS, n) for n in names}


def run_cli(fn) -> None:
    """Runs `fn()`, turning a user error into one clear line and exit status 2.

    A run a guard stopped (NaN/Inf loss, SIGINT/SIGTERM) exits with one line and
    the guard's status (1; 128 + the signal); a checkpoint that could not be
    written (e.g. a full disk), with one line and status 1.
    KDKERAS_DEBUG=1 in the environment shows the full traceback instead.
    """
    from kdkeras.training.checkpoints import CheckpointWriteError, RunDirError
    from kdkeras.training.guards import TrainingStopped

    user_errors = (ValueError, FileNotFoundError, RunDirError)
    try:
        from kdkeras.data import DataError
        user_errors += (DataError,)
    except ImportError:
        pass
    try:
        fn()
    except TrainingStopped as err:
        if os.environ.get("KDKERAS_DEBUG"):
            raise
        print(f"stopped: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except CheckpointWriteError as err:
        if os.environ.get("KDKERAS_DEBUG"):
            raise
        print(f"error: {err.strerror}", file=sys.stderr)
        sys.exit(1)
    except user_errors as err:
        if os.environ.get("KDKERAS_DEBUG"):
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
