"""Per-epoch checkpoints written atomically, and the run directory's rules.

A checkpoint is the Distiller's weights (student, adapters, epoch variable and
the optimizer's slots: Keras 3 `save_weights` includes the optimizer) plus a
small JSON state (epochs done, history so far). Both go through a temporary
file and `os.replace`, so a kill at any instant leaves either the previous
checkpoint or the new one, never a partial file. The last `keep` are kept.
Only complete epochs are saved: an epoch cut short (by a guard or a signal,
`kdkeras.training.guards`) leaves the previous checkpoint as the latest. A
write that fails (e.g. a full disk) removes its temporary file and raises
`CheckpointWriteError`; temporary files a kill left behind are removed when
the run resumes (`remove_partial_files`).
"""

from __future__ import annotations

import errno
import hashlib
import dataclasses
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Optional

import keras

from kdkeras.training.provenance import write_json_atomic

CONFIG_FILE = "config.json"
CKPT_DIR = "checkpoints"


class RunDirError(ValueError):
    """The run directory holds another run (and neither resume nor overwrite was asked)."""


class CheckpointWriteError(OSError):
    """A checkpoint or model file could not be written (no partial file is left)."""


# Temporary names used on the way to an atomic rename (see `write_atomic`,
# `write_json_atomic`): what a kill in the middle of a write can leave behind.
PARTIAL_PATTERNS = ("tmp-*", ".*.tmp")


def remove_partial_files(run_dir) -> list[Path]:
    """Deletes the temporary files a killed write left in `run_dir`; returns them."""
    run_dir = Path(run_dir)
    removed = []
    for folder in (run_dir, run_dir / CKPT_DIR):
        if folder.is_dir():
            for pattern in PARTIAL_PATTERNS:
                for path in folder.glob(pattern):
                    if path.is_file():
                        path.unlink(missing_ok=True)
                        removed.append(path)
    return removed


def write_atomic(path, write, what: str = "file", kept: str = "") -> Path:
    """Calls `write(tmp)` for a temporary `tmp-<name>` beside `path`, then renames it.

    A failure (a full disk, an I/O error) removes the temporary file and raises
    `CheckpointWriteError` saying what could not be written and, from `kept`,
    what is still there.
    """
    path = Path(path)
    tmp = path.with_name(f"tmp-{path.name}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        reason = "the disk is full" if err.errno == errno.ENOSPC else f"{type(err).__name__}: {err}"
        if not kept and path.exists():
            kept = f"the previous {path.name} is unchanged"
        raise CheckpointWriteError(
            err.errno, f"Could not write the {what} {path} ({reason}); no partial file was left"
            f"{', and ' + kept if kept else ''}. Free some space (or fix the error) and "
            "continue with --resume.") from None
    return path


def field_defaults(config) -> dict:
    """The default of each field of a config dataclass that has one."""
    return {f.name: f.default for f in dataclasses.fields(config)
            if f.default is not dataclasses.MISSING}


def added_at_default(name: str, old: dict, new: dict, defaults: dict) -> bool:
    """Whether `name` is a field the stored config `old` lacks and `new` holds at its default.

    Such a run ran with what the default does, so a field added to the config
    since must not make every earlier run count as different. `old` and `new`
    are compared as JSON reads them back (tuples become lists).
    """
    return (name not in old and name in defaults
            and json.loads(json.dumps(new.get(name))) == json.loads(json.dumps(defaults[name])))


def prepare_run_dir(run_dir, config: dict, *, resume: bool, overwrite: bool,
                    ignore=("resume", "overwrite", "verbose", "epochs", "workdir",
                            "on_nonfinite"), defaults: dict | None = None) -> Path:
    """Creates `run_dir`, or checks that it holds this same run when resuming.

    A field the stored config lacks (added to the config since that run began)
    holding its value of `defaults` is no difference: the run ran with what
    that default does (as `kdkeras.distill.stages.finished_results` reads it).
    """
    run_dir = Path(run_dir)
    cfg_path = run_dir / CONFIG_FILE
    if cfg_path.exists():
        if overwrite:
            shutil.rmtree(run_dir)
        elif resume:
            old = json.loads(cfg_path.read_text())
            # Compare as JSON sees it: tuples come back from config.json as lists.
            config = json.loads(json.dumps(config))
            diff = sorted(k for k in set(old) | set(config)
                          if k not in ignore and old.get(k) != config.get(k)
                          and not added_at_default(k, old, config, defaults or {}))
            if diff:
                raise RunDirError(
                    f"--resume: {run_dir} holds a different run (differs in {diff}). "
                    "Use another --workdir, or --overwrite to start again.")
        else:
            raise RunDirError(
                f"{run_dir} already holds a run. Pass --resume to continue it or "
                "--overwrite to replace it, or choose another --workdir.")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(cfg_path, config)
    return run_dir


def _ckpt_path(run_dir: Path, epoch: int) -> Path:
    return run_dir / CKPT_DIR / f"epoch-{epoch:04d}.weights.h5"


def list_checkpoints(run_dir) -> list[tuple[int, Path]]:
    d = Path(run_dir) / CKPT_DIR
    if not d.exists():
        return []
    out = []
    for p in d.glob("epoch-*.weights.h5"):
        try:
            out.append((int(p.name.split("-")[1].split(".")[0]), p))
        except ValueError:
            continue
    return sorted(out)


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves weights + optimizer + history at the end of every epoch, atomically."""

    def __init__(self, run_dir, history: Optional[list] = None, keep: int = 2, guards=()):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.history = list(history or [])
        self.keep = keep
        # An epoch in which a guard (e.g. NonFiniteGuard) stopped the run is not saved.
        self.guards = tuple(guards)

    def on_train_begin(self, logs=None):
        remove_partial_files(self.run_dir)

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._steps_done = 0

    def on_train_batch_end(self, batch, logs=None):
        self._steps_done = batch + 1

    def on_epoch_end(self, epoch, logs=None):
        steps = (self.params or {}).get("steps")
        if self.model.stop_training and steps and self._steps_done < steps:
            return  # Cut short (a guard or a signal): keep the last complete epoch.
        if any(getattr(g, "stopped", None) is not None for g in self.guards):
            return  # Its weights are not good (e.g. a NaN update): keep the last good epoch.
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
        row["seconds"] = round(time.perf_counter() - self._start, 2)
        row["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        path = _ckpt_path(self.run_dir, epoch + 1)
        path.parent.mkdir(parents=True, exist_ok=True)
        done = list_checkpoints(self.run_dir)
        write_atomic(path, lambda tmp: self.model.save_weights(tmp, overwrite=True),
                     what=f"checkpoint of epoch {epoch + 1}",
                     kept=f"the checkpoint of epoch {done[-1][0]} is intact" if done else "")
        self.history.append(row)
        for _, old in list_checkpoints(self.run_dir)[:-self.keep]:
            old.unlink(missing_ok=True)
        kept = {p.name for _, p in list_checkpoints(self.run_dir)}
        hashes = {k: v for k, v in _read_state(self.run_dir).get("sha256", {}).items() if k in kept}
        hashes[path.name] = sha256_of(path)
        try:
            write_json_atomic(self.run_dir / CKPT_DIR / "state.json",
                              {"epochs_done": epoch + 1, "checkpoint": path.name,
                               "sha256": hashes, "history": self.history})
            write_json_atomic(self.run_dir / "history.json", self.history)
        except OSError as err:
            raise CheckpointWriteError(
                err.errno, f"Could not write the run state in {self.run_dir} ({err}); the "
                f"checkpoint {path.name} is complete. Free some space and continue with "
                "--resume.") from None


def trim_csv_history(path, epochs_done: int) -> None:
    """Drops the rows of epochs after `epochs_done` (0-based `epoch` column) from a CSVLogger file.

    A run stopped or killed mid-epoch may have logged a row for an epoch that was
    never checkpointed; the resumed run logs that epoch again.
    """
    path = Path(path)
    if not path.exists():
        return
    lines = path.read_text().splitlines(keepends=True)
    if not lines:
        return
    header = lines[0].rstrip("\r\n").split(",")
    if "epoch" not in header:
        return
    col = header.index("epoch")
    kept = [lines[0]]
    for line in lines[1:]:
        cells = line.rstrip("\r\n").split(",")
        try:
            if int(float(cells[col])) < epochs_done:
                kept.append(line)
        except (ValueError, IndexError):
            continue
    if len(kept) != len(lines):
        write_atomic(path, lambda tmp: Path(tmp).write_text("".join(kept)), what="history")


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_state(run_dir) -> dict:
    """`checkpoints/state.json`, or {} if it is missing or unreadable."""
    try:
        state = json.loads((Path(run_dir) / CKPT_DIR / "state.json").read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def restore_latest(model: keras.Model, run_dir) -> tuple[int, list]:
    """Loads the newest good checkpoint; returns (epochs done, history).

    A checkpoint whose SHA-256 differs from the one recorded when it was written,
    or that fails to load, is reported and skipped in favour of the one before it.
    """
    run_dir = Path(run_dir)
    remove_partial_files(run_dir)
    state = _read_state(run_dir)
    history = state.get("history", [])
    hashes = state.get("sha256", {})
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    errors = []
    for epoch, path in reversed(list_checkpoints(run_dir)):
        expected = hashes.get(path.name)
        if expected is not None and sha256_of(path) != expected:
            errors.append(f"{path.name}: its SHA-256 differs from the one recorded when it "
                          "was written (the file is corrupted)")
            continue
        try:
            model.load_weights(path)
        except Exception as err:  # noqa: BLE001 - fall back to an older checkpoint
            errors.append(f"{path.name}: could not be loaded ({type(err).__name__}: {err})")
            continue
        if errors:
            print(f"kdkeras: skipped a bad checkpoint in {run_dir / CKPT_DIR}: "
                  f"{'; '.join(errors)}. Resuming from {path.name}.", file=sys.stderr, flush=True)
        return epoch, [row for row in history if row["epoch"] <= epoch]
    if errors:
        raise RunDirError(
            f"No checkpoint in {run_dir / CKPT_DIR} could be loaded: {'; '.join(errors)}. "
            "Pass --overwrite to start the run again.")
    return 0, []
