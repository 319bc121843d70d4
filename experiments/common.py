"""Flags shared by the experiment scripts, and their mapping onto config dataclasses.

Every flag defaults to None, meaning "the preset's value", so a preset sets the
schedule and any flag given on the command line overrides it.

Help: each script calls `flags.adopt_module_key_flags(common)` after defining
its flags, so `--help` lists the script's own flags and these shared ones (absl
lists only a script's "key" flags there, and adopting must be done by the script
itself; TensorFlow's and absl's own stay in `--helpfull`). Nothing here
imports TensorFlow or kdkeras at import time, so `--help` answers at once.

Logs: `quiet_logs()` (first thing in every script's `main`) keeps the console
to the run's own output: no TensorFlow C++ start-up lines, no absl/tfds INFO,
no Keras shuffle warning, each TensorFlow warning once; `--verbosity=0` (absl's
flag) brings them back.
"""

from __future__ import annotations

import errno
import os
import sys
import threading
import warnings

from absl import flags
from absl import logging as absl_logging  # defines --verbosity

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

FLAGS = flags.FLAGS
# absl's --verbosity brings the libraries' logs back (see quiet_logs): in every --help.
flags.declare_key_flag("verbosity")

# kdkeras.training.config's PRESET_NAMES and DEFAULT_PRESET, named here so that defining
# the flags imports no TensorFlow (a test checks they agree). `demo` is the main job's;
# the other scripts offer the three schedules.
PRESETS = ("paper", "fast", "demo", "smoke")
SCRIPT_PRESETS = ("paper", "fast", "smoke")
DEFAULT_PRESET = "paper"


# --------------------------------------------------------------------------- presets


def define_schedule_flags(default_preset: str = DEFAULT_PRESET, presets=SCRIPT_PRESETS) -> None:
    """The preset and the overrides of its schedule and scale (every script has them)."""
    flags.DEFINE_enum("preset", default_preset, list(presets),
                      "Schedule preset (kdkeras.training.config); a flag below overrides "
                      "its value.")
    flags.DEFINE_integer("epochs", None, "Epochs (default: the preset's).")
    flags.DEFINE_integer("batch_size", None, "Batch size (default: the preset's).")
    flags.DEFINE_integer("lr_decay_every", None, "Decay the learning rate every N epochs.")
    flags.DEFINE_integer("train_subset", None, "Train on this many examples (class-balanced).")
    flags.DEFINE_integer("test_subset", None, "Evaluate on this many test examples.")
    flags.DEFINE_boolean("jit_compile", None, "Compile the train step with XLA "
                         "(pays on GPUs; slower on CPUs: see docs).")


def define_common_flags(default_model: str) -> None:
    """The shared flags of train.py and distill.py."""
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
    """The `TrainConfig` overrides: the flags named as its fields but --preset and --dataset.

    Also readies what must precede TensorFlow's first op: the devices of
    `--strategy` (the CPU split for mirrored:N without GPUs) and the global
    dtype policy of `--mixed_precision`.
    """
    import dataclasses

    from kdkeras.training.config import TrainConfig

    names = [f.name for f in dataclasses.fields(TrainConfig)
             if f.name in FLAGS and f.name not in ("preset", "dataset")]
    if FLAGS.strategy:
        from kdkeras.training.strategy import prepare_devices

        prepare_devices(FLAGS.strategy)
    if FLAGS.mixed_precision:
        import keras

        keras.mixed_precision.set_global_policy(f"mixed_{FLAGS.mixed_precision}")
    return {n: getattr(FLAGS, n) for n in names}


# --------------------------------------------------------------------------- logs

# TensorFlow's C++ start-up lines, written to the process's stderr before any
# log level applies (TF_CPP_MIN_LOG_LEVEL does not reach them).
_START_UP_NOISE = ("All log messages before absl::InitializeLog()", "oneDNN custom operations",
                   "cpu_feature_guard", "This TensorFlow binary is optimized",
                   "To enable the following instructions", "Unable to register cu",
                   "computation placer already registered", "TF-TRT Warning",
                   "Could not find cuda drivers", "successful NUMA node read")


def verbose_logs() -> bool:
    """Whether the user asked for the libraries' logs (absl's --verbosity given)."""
    try:
        return FLAGS["verbosity"].present > 0
    except KeyError:
        return False


def quiet_logs() -> None:
    """Keeps the console to the run's own output unless --verbosity was given.

    Call first in `main` (flags are parsed, TensorFlow not yet imported).
    """
    if verbose_logs():
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0" if FLAGS.verbosity >= 0 else "2"
        return
    import logging

    absl_logging.set_verbosity(absl_logging.WARNING)
    # Keras warns on every fit that a tf.data pipeline is not re-shuffled by it:
    # the pipelines here shuffle themselves.
    warnings.filterwarnings("ignore", message=r"`shuffle=True` was passed")
    _import_tensorflow_without_start_up_lines()
    # TensorFlow's Python logger also hands each record to absl's handler: once is enough.
    tf_logger = logging.getLogger("tensorflow")
    tf_logger.propagate = False
    tf_logger.setLevel(logging.ERROR)


def _import_tensorflow_without_start_up_lines() -> None:
    """Imports TensorFlow with its C++ start-up lines filtered out of stderr.

    Those lines are written to file descriptor 2 by C++ code, so fd 2 is routed
    through a pipe while TensorFlow loads; every other line passes through.
    """
    if "tensorflow" in sys.modules:
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        read_end, write_end = os.pipe()
    except OSError:
        import tensorflow  # noqa: F401
        return

    def forward():
        with os.fdopen(read_end, "rb") as pipe:
            for line in pipe:
                if not any(noise.encode() in line for noise in _START_UP_NOISE):
                    os.write(saved, line)

    thread = threading.Thread(target=forward, daemon=True)
    thread.start()
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        import tensorflow  # noqa: F401  (no op: --strategy may still split the CPU)
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        thread.join(timeout=5)
        os.close(saved)


# --------------------------------------------------------------------------- errors


def run_cli(fn) -> None:
    """Runs `fn()`, turning a user error into one clear line and exit status 2.

    A run a guard stopped (NaN/Inf loss, SIGINT/SIGTERM) exits with one line and
    the guard's status (1; 128 + the signal); a checkpoint that could not be
    written (e.g. a full disk), with one line and status 1.
    KDKERAS_DEBUG=1 in the environment shows the full traceback instead.
    """
    try:
        fn()
    except Exception as err:
        failure = None if os.environ.get("KDKERAS_DEBUG") else _failure(err)
        if failure is None:
            raise
        print(failure[0], file=sys.stderr)
        sys.exit(failure[1])


def _failure(err: Exception):
    """(the one line, the exit status) of an error the user can act on; None for a bug."""
    from kdkeras.training.checkpoints import CheckpointWriteError, RunDirError
    from kdkeras.training.guards import TrainingStopped

    user_errors = (ValueError, FileNotFoundError, RunDirError)
    try:
        from kdkeras.data import DataError
        user_errors += (DataError,)
    except ImportError:
        pass
    if isinstance(err, TrainingStopped):
        return f"stopped: {err}", err.exit_code
    if isinstance(err, CheckpointWriteError):
        return f"error: {err.strerror}", 1
    if isinstance(err, user_errors):
        return f"error: {err}", 2
    if isinstance(err, OSError) and err.errno in _DISK_ERRNOS:
        # A file the run writes outside the checkpoints (a log, an export) on a full
        # or read-only disk: one line too, not a traceback.
        return (f"error: could not write {err.filename or 'a file'}: {err.strerror}. Free some "
                "space (or fix the permissions) and run again (--resume continues a run).", 1)
    return None


# A full or read-only disk, or no permission: the errors of writing, not of the code.
_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)
