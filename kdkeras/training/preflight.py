"""Checks a run passes before its run directory is made, each naming the flag at fault.

A run that failed after making its directory left that directory behind, and
the rerun with the flag fixed was then refused as "already holds a run"
(issue 21): `--seed=-1`, `--momentum=5`, a teacher built for other inputs, an
output folder that cannot be written. `kdkeras.training.runs` calls these
first.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# `keras.utils.set_random_seed` seeds NumPy, whose seeds are 32-bit.
MAX_SEED = 2**32 - 1


class UnwritableOutputError(ValueError):
    """An output folder is a file, or cannot be written."""


def check_run_config(config) -> None:
    """What a `TrainConfig` accepts but the run would refuse later."""
    seed = config.seed
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"--seed must be an integer in 0..{MAX_SEED}. Received: --seed={seed!r}.")
    if not 0 <= config.momentum <= 1:
        # Keras's SGD refuses it when the optimizer is built, after the run directory.
        raise ValueError("--momentum must lie in [0, 1] (the paper's is 0.9). "
                         f"Received: --momentum={config.momentum!r}.")


def check_writable_dir(path, flag: str) -> Path:
    """Refuses an output folder that is a file or lies where nothing can be written.

    The folder need not exist: its nearest existing parent must then be a
    writable folder. Writability is tried with a real (deleted) file, so what
    passes here is what the run will be able to do.
    """
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise UnwritableOutputError(
            f"{flag}={path} is a file, not a folder. Choose another {flag}.")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UnwritableOutputError(
            f"{flag}={path} cannot be made: {existing} is a file. Choose another {flag}.")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".kdkeras-write-check-")
    except OSError as err:
        raise UnwritableOutputError(
            f"{flag}={path} cannot be written ({existing}: {err.strerror}). Choose another "
            f"{flag}, or make it writable.") from None
    os.close(fd)
    os.unlink(probe)
    return path


def check_teacher_paths(paths) -> None:
    """An empty entry (`--teachers=a,,b`) is a typo, not the current folder."""
    for k, p in enumerate(paths):
        if not str(p).strip():
            raise ValueError(
                f"--teachers has an empty entry (position {k + 1} of {len(paths)}: "
                f"{','.join(map(str, paths))!r}). Remove the extra comma.")


def check_teacher_input(model, path, image_shape) -> None:
    """A teacher must take the run's images (e.g. not one built for 48x48 in a 32x32 run)."""
    expected = tuple(int(d) for d in image_shape)
    got = tuple(model.inputs[0].shape[1:])
    if any(g is not None and g != e for g, e in zip(got, expected)) or len(got) != len(expected):
        raise ValueError(
            f"Teacher checkpoint {path} takes inputs of shape {got}, but the run's images are "
            f"{expected}. Pass --teachers built for this data (or the data they were built "
            "for, with --data_dir).")
