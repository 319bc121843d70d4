"""Teacher recipes for the offline ensemble (P3, issue 16): branched and snapshot teachers.

The paper's K teachers are independent runs (seeds 0..K-1). Independently
initialised networks end in different modes whose features differ by more
than a channel order (Fort et al. 2019, "Deep ensembles: a loss landscape
perspective"), and the mean of their Gram matrices is no network's
(`docs/ensemble.md`). Two recipes give K teachers closer to one another:

* **Branched teachers.** Frankle et al. (2020), "Linear mode connectivity and
  the lottery ticket hypothesis": copies of one network trained on from an
  early checkpoint with different data order become linearly connected after
  a few epochs. One parent run saves its model at an early epoch E
  (`snapshot_epochs=(E,)`); each teacher k starts from that file
  (`init_from`), continues the parent's schedule at epoch E (`start_epoch=E`),
  and draws its own data order and augmentation (`data_order_seed=k`).
  (`start_epoch=0` with `init_from` a fresh model, or `seed` fixed and
  `data_order_seed` varied, is the same initialisation without the shared
  early epochs.)
* **Snapshot teachers.** One run's models saved at several epochs
  (`snapshot_epochs=(e1, e2, e3)`; Huang et al. 2017, "Snapshot ensembles",
  with a cyclic schedule; here the run's own schedule).

Snapshots are whole models (`<workdir>/snapshots/epoch-NNNN.keras`), loadable
as teachers or as a branch point; the optimizer state is not in them, so a
branch restarts its momentum.
"""

from __future__ import annotations

from pathlib import Path

import keras

SNAPSHOT_DIR = "snapshots"


def data_order_seed(config) -> int:
    """The seed of a run's shuffling and augmentation: `data_order_seed`, else `seed`."""
    seed = getattr(config, "data_order_seed", None)
    return config.seed if seed is None else seed


def snapshot_path(run_dir, epoch: int) -> Path:
    return Path(run_dir) / SNAPSHOT_DIR / f"epoch-{epoch:04d}.keras"


class SnapshotSaver(keras.callbacks.Callback):
    """Saves the trained model (a Distiller's student) after each of `epochs` (1-based)."""

    def __init__(self, run_dir, epochs):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.epochs = {int(e) for e in epochs}

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 not in self.epochs or self.model.stop_training:
            return
        from kdkeras.training.checkpoints import write_atomic

        path = snapshot_path(self.run_dir, epoch + 1)
        path.parent.mkdir(parents=True, exist_ok=True)
        model = getattr(self.model, "student", self.model)
        write_atomic(path, model.save, what=f"snapshot of epoch {epoch + 1}")


def check_init_from(path) -> Path:
    """The `.keras` file a run starts from; one clear error if it is not there."""
    path = Path(path)
    if path.is_dir() and (path / "model.keras").exists():
        path = path / "model.keras"
    if not path.is_file():
        raise ValueError(f"init_from={str(path)!r} is not a .keras model file. Pass a run's "
                         "model.keras or one of its snapshots/epoch-NNNN.keras.")
    return path


def initialise_from(model: keras.Model, path) -> keras.Model:
    """Sets `model`'s weights to those of the saved model at `path` (same architecture)."""
    path = check_init_from(path)
    source = keras.saving.load_model(path, compile=False)
    shapes = [tuple(w.shape) for w in model.weights]
    if source.name != model.name or [tuple(w.shape) for w in source.weights] != shapes:
        raise ValueError(
            f"init_from={str(path)!r} holds a {source.name!r} model with "
            f"{source.count_params():,} parameters; this run's {model.name!r} has "
            f"{model.count_params():,}. A run can start only from its own architecture.")
    model.set_weights(source.get_weights())
    return model
