"""The training loop shared by `train.py` and `distill.py`: a run directory in, results out.

Both scripts build a `Distiller` (a plain training run is the `student` method
with no teachers, so teachers, baselines and the full method share one loop, one
weight decay and one checkpoint format) and hand it to `fit_in_run_dir`. The
data decides the feed (`input_pipelines`): tf.data for what
`kdkeras.data.load_dataset` returns, `ArrayBatches` (no TensorFlow: the JAX
path) for an `ArraySplits`, which then runs without TensorBoard.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import keras

from kdkeras.data.numpy_data import ArrayBatches, ArraySplits
from kdkeras.training.checkpoints import EpochCheckpoint, restore_latest, write_atomic
from kdkeras.training.guards import NonFiniteGuard, SignalStop
from kdkeras.training.config import TrainConfig, preset_label, schedule_record
from kdkeras.training.provenance import provenance, write_json_atomic
from kdkeras.training.strategy import process_share, resolve_jit_compile
from kdkeras.training.teacher_recipes import SnapshotSaver, data_order_seed


def make_optimizer(config: TrainConfig) -> keras.optimizers.Optimizer:
    """SGD with Nesterov momentum; weight decay is the Distiller's (coupled L2)."""
    return keras.optimizers.SGD(learning_rate=config.learning_rate, momentum=config.momentum,
                                nesterov=config.nesterov)


def _subset(requested, available):
    """A subset no larger than the data (a preset's subset may exceed a small dataset)."""
    return None if requested is None or requested >= available else requested


def input_pipelines(splits, config: TrainConfig, initial_epoch: int = 0):
    """The training batches of epochs `initial_epoch`..`config.epochs - 1`, and the test ones.

    tf.data pipelines, or `array_batches` for an `ArraySplits`. Each epoch's
    shuffle and augmentation depend only on (seed, epoch), so a run resumed at
    epoch e sees the batches the uninterrupted run saw.
    """
    if isinstance(splits, ArraySplits):
        return array_batches(splits, config, initial_epoch)
    from kdkeras.data import make_input_pipeline

    train = make_input_pipeline(splits.train, training=True, batch_size=config.batch_size,
                                seed=data_order_seed(config), augment=config.augment,
                                subset=_subset(config.train_subset, splits.num_train), epochs=config.epochs,
                                initial_epoch=initial_epoch,
                                labels=getattr(splits, "train_labels", None))
    test = make_input_pipeline(splits.test, training=False, batch_size=config.batch_size,
                               seed=config.seed, augment=False, subset=_subset(config.test_subset, splits.num_test),
                               labels=getattr(splits, "test_labels", None))
    return train, test


def array_batches(data: ArraySplits, config: TrainConfig,
                  initial_epoch: int = 0) -> tuple[ArrayBatches, ArrayBatches]:
    """`input_pipelines` on in-memory arrays, without TensorFlow.

    Batches are pixels in [0, 255] (the run's models normalise them with
    `data.mean`/`data.std`); a subset at least the data size keeps all. Under
    several JAX processes (strategy="multiworker") each feeds its share of
    every batch.
    """
    train = ArrayBatches(data.x_train, data.y_train, batch_size=config.batch_size, training=True,
                         seed=data_order_seed(config), augment=config.augment,
                         subset=config.train_subset, initial_epoch=initial_epoch)
    test = ArrayBatches(data.x_test, data.y_test, batch_size=config.batch_size, training=False,
                        augment=False, subset=config.test_subset)
    return process_share(train), process_share(test)


def sync_csv_history(path, history: list) -> None:
    """Makes a CSVLogger file hold exactly the epochs of `history` (the checkpoint's).

    A run stopped or killed mid-epoch may have logged a row for an epoch that was
    never checkpointed (dropped: the resumed run logs it again); a run killed
    after a checkpoint was committed and before the logger wrote its row lacks
    that row (written from `history`). Rows are keyed by the 0-based `epoch`
    column; those already there keep their text.
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
    by_epoch = {}
    for line in lines[1:]:
        cells = line.rstrip("\r\n").split(",")
        try:
            by_epoch.setdefault(int(float(cells[col])), line)
        except (ValueError, IndexError):
            continue
    kept = [lines[0]]
    for row in history:
        epoch = int(row["epoch"]) - 1
        line = by_epoch.get(epoch)
        if line is None:
            cells = [str(epoch) if name == "epoch" else repr(row.get(name, "")) for name in header]
            line = ",".join(cells) + "\n"
        kept.append(line if line.endswith("\n") else line + "\n")
    if kept != lines:
        write_atomic(path, lambda tmp: Path(tmp).write_text("".join(kept)), what="history")


def save_model_atomic(model: keras.Model, path) -> Path:
    """`model.save` through a temporary `.keras` file and a rename (none left on failure)."""
    return write_atomic(path, model.save, what="model")


def data_scale(splits, config: TrainConfig) -> dict:
    n_train = min(config.train_subset or splits.num_train, splits.num_train)
    n_test = min(config.test_subset or splits.num_test, splits.num_test)
    return {"dataset": splits.name, "dataset_source": getattr(splits, "source", None),
            "num_train": n_train, "num_test": n_test, "num_classes": splits.num_classes}


def run_schedule(config: TrainConfig, scale: dict) -> dict:
    """The schedule `config` ran on data of `scale` (`data_scale`), named paper or shortened."""
    return schedule_record(scale["dataset"], epochs=config.epochs,
                           lr_decay_every=config.lr_decay_every, batch_size=config.batch_size,
                           train_subset=config.train_subset, num_train=scale["num_train"],
                           num_test=scale["num_test"], lr_decay_factor=config.lr_decay_factor)


def fit_in_run_dir(model, splits, config: TrainConfig, run_dir, *, save_name: str,
                   extra_results: dict | None = None) -> dict:
    """Trains `model` (a `Distiller`) with checkpoints in `run_dir`; saves its student.

    `splits` are fed by `input_pipelines`; arrays (`ArraySplits`) run without
    TensorBoard (TensorFlow's) and record their data path. With
    `config.resume` the run continues after its last checkpoint.

    Returns the results dict also written to `run_dir/results.json`.
    """
    run_dir = Path(run_dir)
    on_arrays = isinstance(splits, ArraySplits)
    if on_arrays:
        extra_results = {"data_path": "numpy (kdkeras.data.numpy_data)", **(extra_results or {})}
    initial_epoch, history = compile_and_restore(model, config, run_dir)
    train_ds, test_ds = input_pipelines(splits, config, initial_epoch)
    # The guards stop the run after the current batch (a NaN/Inf loss term, or
    # SIGINT/SIGTERM); the checkpoint keeps the last complete, finite epoch.
    nonfinite = NonFiniteGuard(config.on_nonfinite, run_dir=run_dir)
    on_signal = SignalStop(run_dir)
    checkpoint = EpochCheckpoint(run_dir, history, guards=[nonfinite])
    callbacks = [
        keras.callbacks.LearningRateScheduler(config.learning_rate_at),
        nonfinite,
        checkpoint,
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=initial_epoch > 0),
    ]
    if not on_arrays:
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "tensorboard"),
                                                     write_graph=False))
    if getattr(config, "snapshot_epochs", ()):
        callbacks.append(SnapshotSaver(run_dir, config.snapshot_epochs))
    callbacks.append(on_signal)
    if initial_epoch < config.epochs:
        try:
            # A tf.data pipeline repeats over all the epochs, so it says how long
            # one is; a PyDataset's length is its epoch.
            model.fit(train_ds, validation_data=test_ds, epochs=config.epochs,
                      initial_epoch=initial_epoch,
                      steps_per_epoch=getattr(train_ds, "steps_per_epoch", None),
                      callbacks=callbacks, verbose=config.verbose)
        finally:
            on_signal.restore()
        nonfinite.raise_if_stopped()
        on_signal.raise_if_stopped()
    return save_results(model, splits, config, run_dir, test_ds, checkpoint.history,
                        save_name=save_name, extra_results=extra_results)


def jit_compile_of(model, config: TrainConfig) -> bool | str:
    """Whether the train step is compiled with XLA.

    TensorFlow: `config.jit_compile`, settled against the model's strategy
    (`strategy.resolve_jit_compile`). JAX: always, whatever the config says: an
    eager JAX step runs op by op, many times slower than the compiled one.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return resolve_jit_compile(model.distribute_strategy, config.jit_compile)
    return True if backend == "jax" else config.jit_compile


def compile_and_restore(model, config: TrainConfig, run_dir: Path) -> tuple[int, list]:
    """Compiles `model` for the run and restores its last checkpoint when resuming.

    Returns the epoch to start from (a branched run, `init_from`, continues its
    parent's schedule at `start_epoch`) and the history so far.
    """
    backend = keras.backend.backend()
    keras.utils.set_random_seed(config.seed)
    # On TensorFlow the optimizer (and its restored state) live in the model's strategy.
    scope = (model.distribute_strategy.scope() if backend == "tensorflow"
             else contextlib.nullcontext())
    with scope:
        model.compile(optimizer=make_optimizer(config), jit_compile=jit_compile_of(model, config),
                      on_nonfinite=config.on_nonfinite)   # 'skip': TensorFlow only, refused there
        initial_epoch, history = restore_latest(model, run_dir) if config.resume else (0, [])
    if initial_epoch:
        print(f"Resuming {run_dir} after epoch {initial_epoch}/{config.epochs}.", flush=True)
    if config.resume:
        sync_csv_history(run_dir / "history.csv", history)
    return max(initial_epoch, getattr(config, "start_epoch", 0)), history


def save_results(model, splits, config: TrainConfig, run_dir: Path, test_ds, history: list, *,
                 save_name: str, extra_results: dict | None = None) -> dict:
    """Evaluates the trained student, saves it as `run_dir/save_name`, writes `results.json`."""
    final = model.evaluate(test_ds, return_dict=True, verbose=0)
    saved = save_model_atomic(model.student, run_dir / save_name)
    scale = data_scale(splits, config)
    schedule = run_schedule(config, scale)
    results = {
        "model": model.student.name,
        "test_accuracy": float(final["accuracy"]),
        "test_loss": float(final["loss"]),
        "best_test_accuracy": max((r.get("val_accuracy", 0.0) for r in history), default=None),
        "epochs": config.epochs,
        "saved_model": saved.name,
        **(extra_results or {}),
        "config": config.to_dict(),
        "history": history,
        "schedule": schedule,
        "provenance": provenance(preset=preset_label(config.preset, schedule), seed=config.seed,
                                 epochs=config.epochs, **scale),
    }
    write_json_atomic(run_dir / "results.json", results)
    return results
