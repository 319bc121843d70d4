"""Per-epoch checkpoints written atomically, and the run directory's rules.

A checkpoint is the Distiller's weights (student, adapters, epoch variable and
the optimizer's slots: Keras 3 `save_weights` includes the optimizer) plus a
small JSON state (epochs done, history so far). Both go through a temporary
file and `os.replace`, so a kill at any instant leaves either the previous
checkpoint or the new one, never a partial file. The last `keep` are kept.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Optional

import keras

from kdkeras.training.provenance import write_json_atomic

CONFIG_FILE = "config.json"
CKPT_DIR = "checkpoints"


class RunDirError(ValueError):
    """The run directory holds another run (and neither resume nor overwrite was asked)."""


def prepare_run_dir(run_dir, config: dict, *, resume: bool, overwrite: bool,
                    ignore=("resume", "overwrite", "verbose", "epochs", "workdir")) -> Path:
    """Creates `run_dir`, or checks that it holds this same run when resuming."""
    run_dir = Path(run_dir)
    cfg_path = run_dir / CONFIG_FILE
    if cfg_path.exists():
        if overwrite:
            shutil.rmtree(run_dir)
        elif resume:
            old = json.loads(cfg_path.read_text())
            diff = sorted(k for k in set(old) | set(config)
                          if k not in ignore and old.get(k) != config.get(k))
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

    def __init__(self, run_dir, history: Optional[list] = None, keep: int = 2):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.history = list(history or [])
        self.keep = keep

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
        row["seconds"] = round(time.perf_counter() - self._start, 2)
        row["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        self.history.append(row)
        path = _ckpt_path(self.run_dir, epoch + 1)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"tmp-{path.name}")
        self.model.save_weights(tmp, overwrite=True)
        os.replace(tmp, path)
        write_json_atomic(self.run_dir / CKPT_DIR / "state.json",
                          {"epochs_done": epoch + 1, "checkpoint": path.name,
                           "history": self.history})
        write_json_atomic(self.run_dir / "history.json", self.history)
        for _, old in list_checkpoints(self.run_dir)[:-self.keep]:
            old.unlink(missing_ok=True)


def restore_latest(model: keras.Model, run_dir) -> tuple[int, list]:
    """Loads the newest readable checkpoint; returns (epochs done, history).

    A checkpoint that fails to load (e.g. corrupted) is skipped in favour of
    the one before it.
    """
    run_dir = Path(run_dir)
    state_path = run_dir / CKPT_DIR / "state.json"
    history = json.loads(state_path.read_text())["history"] if state_path.exists() else []
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    errors = []
    for epoch, path in reversed(list_checkpoints(run_dir)):
        try:
            model.load_weights(path)
        except Exception as err:  # noqa: BLE001 - fall back to an older checkpoint
            errors.append(f"{path.name}: {err}")
            continue
        return epoch, [row for row in history if row["epoch"] <= epoch]
    if errors:
        raise RuntimeError("No checkpoint in {} could be loaded: {}".format(run_dir, "; ".join(errors)))
    return 0, []
