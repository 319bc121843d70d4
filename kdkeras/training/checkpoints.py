"""Per-epoch checkpoints written atomically, and the run directory's rules.

A checkpoint is the Distiller's weights (student, adapters, epoch variable and
the optimizer's slots: Keras 3 `save_weights` includes the optimizer),
`epoch-NNNN.weights.h5`, and beside it the history it belongs to,
`epoch-NNNN.json` (epochs done, every epoch's row, the weights' SHA-256). The
JSON is written first and the weights' rename commits both: a kill at any
instant leaves either the previous checkpoint with its history or the new one
with its history, never a partial file and never weights without their
history. `state.json` and `history.json` are copies written after the commit,
for readers. The last `keep` checkpoints are kept.
Only complete epochs are saved: an epoch cut short (by a guard or a signal,
`kdkeras.training.guards`) leaves the previous checkpoint as the latest. A
write that fails (e.g. a full disk) removes its temporary file and raises
`CheckpointWriteError`; temporary files a kill left behind are removed when
the run resumes (`remove_partial_files`). The weights are serialised in memory
and written with plain file I/O: a full disk is then an ordinary `OSError`, not
an HDF5 library error (h5py crashed the process after one, issue 21).
"""

from __future__ import annotations

import errno
import dataclasses
import hashlib
import io
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
    """Deletes what a killed write left in `run_dir`; returns it.

    That is the temporary files of atomic writes, and a checkpoint's history
    (`epoch-NNNN.json`) whose weights were never committed.
    """
    run_dir = Path(run_dir)
    removed = []
    for folder in (run_dir, run_dir / CKPT_DIR):
        if folder.is_dir():
            for pattern in PARTIAL_PATTERNS:
                for path in folder.glob(pattern):
                    if path.is_file():
                        path.unlink(missing_ok=True)
                        removed.append(path)
    for sidecar in (run_dir / CKPT_DIR).glob("epoch-*.json"):
        if not _weights_of(sidecar).exists():
            sidecar.unlink(missing_ok=True)
            removed.append(sidecar)
    return removed


def write_atomic(path, write, what: str = "file", kept: str = "", shown=None) -> Path:
    """Calls `write(tmp)` for a temporary `tmp-<name>` beside `path`, then renames it.

    A failure (a full disk, an I/O error) removes the temporary file and raises
    `CheckpointWriteError` saying what could not be written (`shown`, default
    `path`) and, from `kept`, what is still there.
    """
    path = Path(path)
    shown = path if shown is None else shown
    tmp = path.with_name(f"tmp-{path.name}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if not kept and Path(shown).exists():
            kept = f"the previous {Path(shown).name} is unchanged"
        raise CheckpointWriteError(
            err.errno, f"Could not write the {what} {shown} ({_reason(err)}); no partial file "
            f"was left{', and ' + kept if kept else ''}. Free some space (or fix the error) and "
            "continue with --resume.") from None
    return path


def _reason(err: OSError) -> str:
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full"
    return f"{type(err).__name__}: {err}"


def write_bytes_synced(path, data: bytes) -> None:
    """Writes `data` to `path` and flushes it to the disk."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def weights_file_bytes(model: keras.Model) -> bytes:
    """What `model.save_weights` writes (weights and optimizer state), built in memory.

    HDF5 writes its files itself; when the disk fills mid-write, h5py raised
    errors from its finalisers and then crashed the process (exit 139, issue
    21). Built in memory, the file reaches the disk through `write_bytes_synced`,
    whose failure is a plain `OSError`. This uses the two functions
    `save_weights` itself calls (Keras 3's saving library), so the bytes load
    with `model.load_weights`.
    """
    from keras.src.saving.saving_lib import H5IOStore, _save_state

    buffer = io.BytesIO()
    store = H5IOStore(buffer, mode="w")
    try:
        _save_state(model, weights_store=store, assets_store=None, inner_path="",
                    visited_saveables=set())
    finally:
        store.close()
    return buffer.getvalue()


# What a run is: its config, but for these fields, which say how this process
# carries it out (where, whether to resume, how much to print).
NOT_THE_RUN = ("resume", "overwrite", "verbose", "workdir")
# What a resumed run may change: train on for more epochs, or another NaN/Inf policy.
RESUMABLE_CHANGES = ("epochs", "on_nonfinite")


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


def run_differences(stored: dict, config: dict, defaults: dict | None = None,
                    allowed=()) -> list[str]:
    """The fields in which `config` is another run than the stored config of a run directory.

    The one definition of "the same run", for resuming (`prepare_run_dir`, which
    also `allowed` the `RESUMABLE_CHANGES`) and for reading a finished run back
    (`kdkeras.training.runs.finished_results`). Compared as JSON reads them back
    (tuples become lists); the fields of `NOT_THE_RUN` never differ, and a field
    added to the config since the run began differs only if not at its default.
    """
    config = json.loads(json.dumps(config))
    skip = set(NOT_THE_RUN) | set(allowed)
    return sorted(k for k in set(stored) | set(config)
                  if k not in skip and stored.get(k) != config.get(k)
                  and not added_at_default(k, stored, config, defaults or {}))


def prepare_run_dir(run_dir, config: dict, *, resume: bool, overwrite: bool,
                    defaults: dict | None = None) -> Path:
    """Creates `run_dir`, or checks that it holds this same run when resuming.

    "The same run" is `run_differences` with the `RESUMABLE_CHANGES` allowed;
    `defaults` are the config's field defaults (`field_defaults`).
    """
    from kdkeras.training.run_lock import LOCK_FILE

    run_dir = Path(run_dir)
    cfg_path = run_dir / CONFIG_FILE
    if cfg_path.exists():
        if overwrite:
            # Everything but the lock, which this process may hold (`run_lock`).
            for child in run_dir.iterdir():
                if child.name == LOCK_FILE:
                    continue
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        elif resume:
            done = max([e for e, _ in list_checkpoints(run_dir)], default=0)
            if isinstance(config.get("epochs"), int) and done > config["epochs"]:
                raise RunDirError(
                    f"--resume: {run_dir} has already trained {done} epochs, more than "
                    f"--epochs={config['epochs']}. Pass --epochs={done} or more to continue it "
                    "(its finished results are in results.json).")
            diff = run_differences(json.loads(cfg_path.read_text()), config, defaults,
                                   allowed=RESUMABLE_CHANGES)
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


def _history_of(weights: Path) -> Path:
    """`epoch-NNNN.json`: the history committed with `epoch-NNNN.weights.h5`."""
    return weights.with_name(weights.name.replace(".weights.h5", ".json"))


def _weights_of(history: Path) -> Path:
    return history.with_name(history.name.replace(".json", ".weights.h5"))


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
    """Saves weights + optimizer + history at the end of every epoch, as one commit."""

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
        history = self.history + [row]
        path = _ckpt_path(self.run_dir, epoch + 1)
        path.parent.mkdir(parents=True, exist_ok=True)
        done = list_checkpoints(self.run_dir)
        what = f"checkpoint of epoch {epoch + 1}"
        kept = f"the checkpoint of epoch {done[-1][0]} is intact" if done else ""
        weights = weights_file_bytes(self.model)
        digest = hashlib.sha256(weights).hexdigest()
        # 1. The history, first: without its weights it is ignored (and removed).
        record = {"epochs_done": epoch + 1, "checkpoint": path.name, "sha256": digest,
                  "history": history}
        write_atomic(_history_of(path), lambda tmp: write_json_synced(tmp, record),
                     what=what, kept=kept, shown=path)
        # 2. The weights: their rename commits the checkpoint and its history as one.
        try:
            write_atomic(path, lambda tmp: write_bytes_synced(tmp, weights), what=what, kept=kept)
        except CheckpointWriteError:
            _history_of(path).unlink(missing_ok=True)
            raise
        _sync_dir(path.parent)
        self.history = history
        # 3. Older checkpoints go, then the copies for readers are refreshed.
        for _, old in list_checkpoints(self.run_dir)[:-self.keep]:
            old.unlink(missing_ok=True)
            _history_of(old).unlink(missing_ok=True)
        write_copies(self.run_dir, record)


def write_copies(run_dir, record: dict) -> None:
    """`state.json` and `history.json` from a committed checkpoint's record.

    They are copies for readers (and for runs of older kdkeras versions):
    `restore_latest` rewrites them from the checkpoint it resumes, so a kill
    between the commit and these writes leaves nothing stale behind.
    """
    run_dir = Path(run_dir)
    hashes = {p.name: _recorded_sha256(p) for _, p in list_checkpoints(run_dir)}
    try:
        write_json_atomic(run_dir / CKPT_DIR / "state.json", {**record, "sha256": hashes})
        write_json_atomic(run_dir / "history.json", record["history"])
    except OSError as err:
        raise CheckpointWriteError(
            err.errno, f"Could not write the run state in {run_dir} ({_reason(err)}); the "
            f"checkpoint {record['checkpoint']} and its history are complete. Free some space "
            "and continue with --resume.") from None


def write_json_synced(path, data) -> None:
    write_bytes_synced(path, (json.dumps(data, indent=2) + "\n").encode())


def _sync_dir(folder: Path) -> None:
    """Makes a rename in `folder` durable (a crash of the machine, not only of the process)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _read_json(path) -> dict:
    """A JSON object from `path`, or {} if it is missing or unreadable."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _recorded_sha256(weights: Path) -> Optional[str]:
    return _read_json(_history_of(weights)).get("sha256")


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_state(run_dir) -> dict:
    """`checkpoints/state.json`, or {} if it is missing or unreadable."""
    return _read_json(Path(run_dir) / CKPT_DIR / "state.json")


def restore_latest(model: keras.Model, run_dir) -> tuple[int, list]:
    """Loads the newest good checkpoint; returns (epochs done, its history).

    A checkpoint whose SHA-256 differs from the one recorded when it was written,
    or that fails to load, is reported and skipped in favour of the one before it.
    The history is the one committed with the checkpoint (`epoch-NNNN.json`; a
    run from before those files: `state.json`'s, cut at the checkpoint's epoch).
    A run whose records say epochs were done but whose checkpoints are all gone
    is refused rather than silently restarted.
    """
    run_dir = Path(run_dir)
    remove_partial_files(run_dir)
    state = _read_state(run_dir)
    hashes = state.get("sha256", {})
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    errors = []
    for epoch, path in reversed(list_checkpoints(run_dir)):
        committed = _read_json(_history_of(path))
        expected = committed.get("sha256") or hashes.get(path.name)
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
        history = committed.get("history", state.get("history", []))
        history = [row for row in history if row["epoch"] <= epoch]
        if committed:
            write_copies(run_dir, {**committed, "history": history})
        return epoch, history
    if errors:
        raise RunDirError(
            f"No checkpoint in {run_dir / CKPT_DIR} could be loaded: {'; '.join(errors)}. "
            "Pass --overwrite to start the run again.")
    done = int(state.get("epochs_done") or 0)
    if done:
        raise RunDirError(
            f"--resume: {run_dir} records {done} finished epoch(s) "
            f"({run_dir / CKPT_DIR / 'state.json'}), but {run_dir / CKPT_DIR} holds no "
            "checkpoint: they were deleted. Resuming would silently start again from epoch 1; "
            "pass --overwrite to do that, or put the checkpoints back.")
    return 0, []
