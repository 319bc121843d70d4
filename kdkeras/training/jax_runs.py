"""Whole runs on in-memory arrays: the training loop without tf.data, for the JAX backend.

`train_model`/`distill_model` (`kdkeras.training.runs`) feed `tf.data` pipelines
and log to TensorBoard, both TensorFlow. These twins take an `ArraySplits`
(`kdkeras.data.numpy_data.load_image_arrays`) and feed `ArrayBatches`, and
otherwise share everything: the configs, the `Distiller`, the optimizer, the
learning-rate schedule, the per-epoch checkpoints (`--resume`), the run
directory and its `results.json` with provenance. Nothing here imports
TensorFlow, so they run on the GPU machine (JAX, no TensorFlow):

    data = load_image_arrays("cifar10-jpeg.tar.gz", name="cifar10_jpeg")
    config = resolve_config(DistillRunConfig, "paper", dataset="cifar10_jpeg",
                            model="resnet8", teacher_model="resnet32",
                            train_teachers=3, workdir="runs/r32-r8-ours")
    results = distill_arrays(config, data)

Under JAX the step is always compiled (`jit_compile=True`): an eager JAX step
runs op by op and is many times slower.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import keras

from kdkeras import models
from kdkeras.data.numpy_data import ArrayBatches, ArraySplits
from kdkeras.distill import Distiller, method_config
from kdkeras.training.checkpoints import (EpochCheckpoint, prepare_run_dir, restore_latest,
                                          trim_csv_history)
from kdkeras.training.config import DistillRunConfig, TrainConfig
from kdkeras.training.guards import NonFiniteGuard, SignalStop
from kdkeras.training.provenance import provenance, write_json_atomic
from kdkeras.training.runs import build_model, load_teacher, teacher_configs
from kdkeras.training.trainer import data_scale, make_optimizer, save_model_atomic


def array_batches(data: ArraySplits, config: TrainConfig,
                  initial_epoch: int = 0) -> tuple[ArrayBatches, ArrayBatches]:
    """The training batches of epochs `initial_epoch`.. and the test batches of a run.

    As `kdkeras.training.trainer.input_pipelines`: each epoch's order and
    augmentation depend on (seed, epoch) only, so a resumed run sees the
    batches the uninterrupted one saw; a subset at least the data size keeps all.
    """
    stats = dict(mean=data.mean, std=data.std)
    train = ArrayBatches(data.x_train, data.y_train, batch_size=config.batch_size, training=True,
                         seed=config.seed, augment=config.augment, subset=config.train_subset,
                         initial_epoch=initial_epoch, **stats)
    test = ArrayBatches(data.x_test, data.y_test, batch_size=config.batch_size, training=False,
                        augment=False, subset=config.test_subset, **stats)
    return train, test


def fit_arrays_in_run_dir(model: Distiller, data: ArraySplits, config: TrainConfig, run_dir, *,
                          save_name: str, extra_results: dict | None = None) -> dict:
    """`kdkeras.training.trainer.fit_in_run_dir` on arrays: no tf.data, no TensorBoard.

    The same callbacks otherwise: the learning-rate schedule, `NonFiniteGuard`
    (policy "stop"; "skip" is TensorFlow-only), per-epoch checkpoints, the CSV
    log and `SignalStop` (a SIGTERM stops after the current batch; the last
    complete epoch stays the checkpoint).
    """
    run_dir = Path(run_dir)
    if config.on_nonfinite == "skip" and keras.backend.backend() != "tensorflow":
        raise ValueError("on_nonfinite='skip' runs on the TensorFlow backend only; "
                         f"on {keras.backend.backend()} use 'stop'.")
    keras.utils.set_random_seed(config.seed)
    jit = True if keras.backend.backend() == "jax" else config.jit_compile
    model.compile(optimizer=make_optimizer(config), jit_compile=jit)
    initial_epoch, history = restore_latest(model, run_dir) if config.resume else (0, [])
    if initial_epoch:
        print(f"Resuming {run_dir} after epoch {initial_epoch}/{config.epochs}.", flush=True)
        trim_csv_history(run_dir / "history.csv", initial_epoch)
    train, test = array_batches(data, config, initial_epoch)
    nonfinite = NonFiniteGuard(config.on_nonfinite, run_dir=run_dir)
    on_signal = SignalStop(run_dir)
    checkpoint = EpochCheckpoint(run_dir, history, guards=[nonfinite])
    callbacks = [
        keras.callbacks.LearningRateScheduler(config.learning_rate_at),
        nonfinite,
        checkpoint,
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=initial_epoch > 0),
        on_signal,
    ]
    if initial_epoch < config.epochs:
        try:
            model.fit(train, validation_data=test, epochs=config.epochs,
                      initial_epoch=initial_epoch, callbacks=callbacks, verbose=config.verbose)
        finally:
            on_signal.restore()
        nonfinite.raise_if_stopped()
        on_signal.raise_if_stopped()
    history = checkpoint.history
    final = model.evaluate(test, return_dict=True, verbose=0)
    saved = save_model_atomic(model.student, run_dir / save_name)
    results = {
        "model": model.student.name,
        "test_accuracy": float(final["accuracy"]),
        "test_loss": float(final["loss"]),
        "best_test_accuracy": max((r.get("val_accuracy", 0.0) for r in history), default=None),
        "epochs": config.epochs,
        "saved_model": saved.name,
        "data_path": "numpy (kdkeras.data.numpy_data)",
        **(extra_results or {}),
        "config": config.to_dict(),
        "history": history,
        "provenance": provenance(preset=config.preset, seed=config.seed, epochs=config.epochs,
                                 **data_scale(data, config)),
    }
    write_json_atomic(run_dir / "results.json", results)
    return results


def _run_dir(config: TrainConfig) -> Path:
    # The config as config.json will hold it (tuples as lists), so that a resumed
    # run compares equal to the one it continues.
    as_json = json.loads(json.dumps(config.to_dict()))
    return prepare_run_dir(config.workdir, as_json, resume=config.resume,
                           overwrite=config.overwrite)


def _check_batch(config: TrainConfig, data: ArraySplits) -> None:
    n_train = min(config.train_subset or data.num_train, data.num_train)
    if config.batch_size > n_train:
        raise ValueError(f"batch_size={config.batch_size} is larger than the training data "
                         f"({n_train} examples). Lower --batch_size or raise --train_subset.")


def train_arrays(config: TrainConfig, data: ArraySplits) -> dict:
    """`kdkeras.training.runs.train_model` on arrays: `config.model` from scratch."""
    models.spec(config.model)
    _check_batch(config, data)
    run_dir = _run_dir(config)
    keras.utils.set_random_seed(config.seed)  # the initial weights are the seed's
    model = build_model(config.model, data)
    trainer = Distiller(model, [], method_config("student"), weight_decay=config.weight_decay)
    return fit_arrays_in_run_dir(trainer, data, config, run_dir, save_name="model.keras")


def distill_arrays(config: DistillRunConfig, data: ArraySplits) -> dict:
    """`kdkeras.training.runs.distill_model` on arrays: K teachers (given or trained), then the student."""
    models.spec(config.model)
    models.spec(config.teacher_model)
    distill_config = method_config(config.method, **dict(config.distill_options))
    _check_batch(config, data)
    teacher_paths = list(config.teachers)
    teachers = [load_teacher(p, expected_model=config.teacher_model,
                             num_classes=data.num_classes) for p in teacher_paths]
    if config.method != "student" and not teachers and not config.train_teachers:
        raise ValueError(f"Method {config.method!r} needs teachers: pass --teachers=PATHS "
                         "or --train_teachers=K.")
    run_dir = _run_dir(config)
    for tcfg in teacher_configs(config):
        print(f"Training teacher {tcfg.model} (seed {tcfg.seed}) in {tcfg.workdir}", flush=True)
        train_arrays(tcfg, data)
        teacher_paths.append(str(Path(tcfg.workdir) / "model.keras"))
        teachers.append(load_teacher(teacher_paths[-1], expected_model=config.teacher_model))
    if not distill_config.uses_teachers:
        teachers = []
    keras.utils.set_random_seed(config.seed)  # the student's initial weights are the seed's
    student = build_model(config.model, data)
    distiller = Distiller(student, teachers, distill_config, weight_decay=config.weight_decay)
    extra = {"method": config.method, "teacher_model": config.teacher_model,
             "teachers": teacher_paths, "distill_config": dataclasses.asdict(distill_config)}
    return fit_arrays_in_run_dir(distiller, data, config, run_dir, save_name="student.keras",
                                 extra_results=extra)


def accelerator() -> dict:
    """What the run computed on: the JAX devices and versions (part of the summary's provenance)."""
    info = {"backend": keras.backend.backend(), "keras": keras.__version__}
    if info["backend"] == "jax":
        import jax

        info.update(jax=jax.__version__, devices=[f"{d.platform}:{d.device_kind}"
                                                  for d in jax.devices()])
    return info


def compare_methods(base: DistillRunConfig, data: ArraySplits, *, methods, seeds,
                    num_teachers: int, root) -> dict:
    """K teachers trained once (seeds 0..K-1), then a student per method and seed, all resumable.

    `base` gives the recipe (preset, epochs, batch, subsets, models); run
    directories go under `root` (`teachers/teacher-k`, `<method>-s<seed>`), and
    `root/summary.json` collects every run's test accuracy with provenance.
    Rerunning continues where a killed run stopped (per-epoch checkpoints).
    """
    root = Path(root)
    teacher_paths = []
    summary = {"teachers": [], "students": [], "accelerator": accelerator()}
    for k in range(num_teachers):
        tcfg = TrainConfig(**{**{f.name: getattr(base, f.name)
                                 for f in dataclasses.fields(TrainConfig)},
                              "model": base.teacher_model, "seed": k, "resume": True,
                              "overwrite": False, "workdir": str(root / "teachers" / f"teacher-{k}")})
        result = train_arrays(tcfg, data)
        teacher_paths.append(str(Path(tcfg.workdir) / "model.keras"))
        summary["teachers"].append({"seed": k, "test_accuracy": result["test_accuracy"]})
        write_json_atomic(root / "summary.json", summary)
    for seed in seeds:
        for method in methods:
            teachers = () if method == "student" else tuple(teacher_paths)
            cfg = dataclasses.replace(base, method=method, seed=seed, teachers=teachers,
                                      train_teachers=0, resume=True, overwrite=False,
                                      workdir=str(root / f"{method}-s{seed}"))
            result = distill_arrays(cfg, data)
            summary["students"].append({"method": method, "seed": seed,
                                        "num_teachers": len(teachers),
                                        "test_accuracy": result["test_accuracy"],
                                        "best_test_accuracy": result["best_test_accuracy"]})
            write_json_atomic(root / "summary.json", summary)
    summary["provenance"] = provenance(preset=base.preset, epochs=base.epochs,
                                       **data_scale(data, base))
    write_json_atomic(root / "summary.json", summary)
    return summary
