"""Whole runs: train a model from scratch, or distil a student, into a run directory.

These are what `experiments/train.py` and `experiments/distill.py` call, and what
the table reproduction composes; they validate their inputs before any compute.
Their `fit` is the loop that trains the built `Distiller` in its run directory:
`fit_in_run_dir` on tf.data, or its twin on in-memory arrays
(`kdkeras.training.jax_runs.fit_arrays_in_run_dir`, for the JAX backend).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import keras

from kdkeras import models
from kdkeras.distill import Distiller, method_config
from kdkeras.models.normalization import ensure_input_normalization
from kdkeras.training.checkpoints import field_defaults, prepare_run_dir
from kdkeras.training.config import DistillRunConfig, TrainConfig
from kdkeras.training.preflight import (check_run_config, check_teacher_input,
                                        check_teacher_paths, check_writable_dir)
from kdkeras.training.run_lock import RunLock
from kdkeras.training.strategy import chief_writes, get_strategy
from kdkeras.training.teacher_recipes import check_init_from, initialise_from
from kdkeras.training.trainer import fit_in_run_dir


class TeacherError(ValueError):
    """A teacher checkpoint is missing, unreadable or does not fit the run."""


def _load_data(config: TrainConfig):
    from kdkeras.data import load_dataset

    return load_dataset(config.dataset, config.data_dir)


def _check_batch(config: TrainConfig, splits) -> None:
    n_train = min(config.train_subset or splits.num_train, splits.num_train)
    if config.batch_size > n_train:
        raise ValueError(
            f"batch_size={config.batch_size} is larger than the training data "
            f"({n_train} examples). Lower --batch_size or raise --train_subset.")


def build_model(name: str, splits) -> keras.Model:
    """`name` for the splits: their classes and image shape, normalising with their statistics.

    The pipelines hand models pixels in [0, 255]; the model's first layer
    normalises them with the training images' mean/std (`splits.mean`/`.std`),
    and is saved with it.
    """
    return models.get(name, num_classes=splits.num_classes, input_shape=splits.image_shape,
                      input_normalization=(splits.mean, splits.std))


def _normalization_record(model: keras.Model) -> dict:
    """What `results.json` records of the model's input normalisation."""
    return {"input_normalization": {**models.input_statistics(model),
                                    "formula": "(x / 255 - mean) / std, x in [0, 255]"}}


def _strategy_scope(config: TrainConfig):
    """The scope the run's models are built in: its `tf.distribute` strategy's.

    Strategies are TensorFlow's; on another backend (JAX places arrays itself)
    the models are built in no scope.
    """
    if keras.backend.backend() != "tensorflow":
        return contextlib.nullcontext()
    return get_strategy(config.strategy).scope()


@chief_writes  # strategy='multiworker': only the chief writes in config.workdir
def train_model(config: TrainConfig, splits=None, *, fit: Callable = fit_in_run_dir) -> dict:
    """Trains `config.model` from scratch (the `student` method, no teachers)."""
    models.spec(config.model)
    check_run_config(config)
    check_writable_dir(config.workdir, "--workdir")
    if config.init_from:
        check_init_from(config.init_from)
    splits = splits or _load_data(config)
    _check_batch(config, splits)
    with RunLock(config.workdir):   # one process at a time in a run directory
        run_dir = prepare_run_dir(config.workdir, config.to_dict(), resume=config.resume,
                                  overwrite=config.overwrite, defaults=field_defaults(config))
        keras.utils.set_random_seed(config.seed)  # the initial weights are the seed's
        with _strategy_scope(config):
            model = build_model(config.model, splits)
            if config.init_from:   # a branched teacher (teacher_recipes): its parent's weights
                initialise_from(model, config.init_from)
            trainer = Distiller(model, [], method_config("student"),
                                weight_decay=config.weight_decay)
        return fit(trainer, splits, config, run_dir, save_name="model.keras",
                   extra_results=_normalization_record(model))


def load_teacher(path, *, expected_model: str | None = None,
                 num_classes: int | None = None, image_shape=None) -> keras.Model:
    """Loads a teacher `.keras` file with clear errors for every way it can be wrong.

    The teacher takes pixels in [0, 255] (`kdkeras.models.load_teacher`): one
    saved before models owned their normalisation is wrapped with the
    statistics recorded beside it.
    """
    path = Path(path)
    if path.is_dir() and (path / "model.keras").exists():
        path = path / "model.keras"
    if not path.exists():
        raise TeacherError(
            f"Teacher checkpoint {path} does not exist. Train one with experiments/train.py "
            "(it writes <workdir>/model.keras) or use --train_teachers=K.")
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as err:  # noqa: BLE001 - any failure to read is the same user error
        raise TeacherError(f"Teacher checkpoint {path} could not be read as a Keras model: "
                           f"{type(err).__name__}: {err}") from None
    try:
        model = ensure_input_normalization(model, path)
    except ValueError as err:
        raise TeacherError(str(err)) from None
    if expected_model is not None and model.name != expected_model:
        raise TeacherError(
            f"Teacher checkpoint {path} holds a {model.name!r} model, but the run expects "
            f"--teacher_model={expected_model!r}.")
    n = int(model.outputs[0].shape[-1])
    if num_classes is not None and n != num_classes:
        raise TeacherError(
            f"Teacher checkpoint {path} predicts {n} classes but the dataset has {num_classes}.")
    if image_shape is not None:
        check_teacher_input(model, path, image_shape)
    return model


def teacher_configs(config: DistillRunConfig) -> list[TrainConfig]:
    """The training runs of the K teachers that `train_teachers=K` asks for.

    Teacher k uses seed k whatever the student's seed, so the student runs of
    several seeds share the same K teachers (as the paper's offline ensemble does).
    """
    root = Path(config.workdir) / "teachers"
    base = {f.name: getattr(config, f.name) for f in dataclasses.fields(TrainConfig)}
    return [TrainConfig(**{**base, "model": config.teacher_model, "seed": k,
                           "workdir": str(root / f"teacher-{k}"), "resume": True,
                           "overwrite": False})
            for k in range(config.train_teachers)]


def check_duplicate_teacher_paths(paths, allow: bool) -> None:
    """The same checkpoint twice is K=1 at K times the cost: refused unless `allow`."""
    seen = {}
    for k, p in enumerate(paths):
        key = os.path.realpath(p) if str(p).strip() else p
        if key in seen:
            message = (f"--teachers gives the same checkpoint twice (entries {seen[key] + 1} and "
                       f"{k + 1}: {p}); K copies of one teacher distil as one teacher does, "
                       "at K times the cost.")
            if not allow:
                raise ValueError(f"{message} Pass distinct teachers, or "
                                 "--allow_duplicate_teachers to run it anyway (plumbing tests).")
            warnings.warn(f"{message} Running it as asked (--allow_duplicate_teachers).",
                          stacklevel=3)
            return
        seen[key] = k


@chief_writes
def distill_model(config: DistillRunConfig, splits=None, *,
                  fit: Callable = fit_in_run_dir, allow_duplicate_teachers: bool = False) -> dict:
    """Distils `config.model` from K teachers (given or trained first, by the same `fit`).

    `allow_duplicate_teachers`: accept one checkpoint given more than once (with
    a warning), as the smoke reproduction does to test the K-teacher plumbing.
    """
    models.spec(config.model)
    models.spec(config.teacher_model)
    check_run_config(config)
    check_teacher_paths(config.teachers)
    check_duplicate_teacher_paths(config.teachers, allow_duplicate_teachers)
    check_writable_dir(config.workdir, "--workdir")
    distill_config = method_config(config.method, **dict(config.distill_options))
    splits = splits or _load_data(config)
    _check_batch(config, splits)
    teacher_paths = list(config.teachers)
    # Validate given checkpoints before any training starts.
    with _strategy_scope(config):
        teachers = [load_teacher(p, expected_model=config.teacher_model,
                                 num_classes=splits.num_classes, image_shape=splits.image_shape)
                    for p in teacher_paths]
    if config.method != "student" and not teachers and not config.train_teachers:
        raise ValueError(f"Method {config.method!r} needs teachers: pass --teachers=PATHS "
                         "or --train_teachers=K.")
    if distill_config.uses_teachers and not teachers:
        # Fail on a bad switch (e.g. a cross depth the taps cannot reach) now,
        # with untrained stand-ins, not after the teachers have trained.
        Distiller(build_model(config.model, splits),
                  [build_model(config.teacher_model, splits)], distill_config)
    with RunLock(config.workdir):   # one process at a time in a run directory
        return _distill_in_run_dir(config, splits, distill_config, teachers, teacher_paths, fit)


def _distill_in_run_dir(config, splits, distill_config, teachers, teacher_paths, fit) -> dict:
    run_dir = prepare_run_dir(config.workdir, config.to_dict(), resume=config.resume,
                              overwrite=config.overwrite, defaults=field_defaults(config))
    for tcfg in teacher_configs(config):
        print(f"Training teacher {tcfg.model} (seed {tcfg.seed}) in {tcfg.workdir}", flush=True)
        train_model(tcfg, splits, fit=fit)
        teacher_paths.append(str(Path(tcfg.workdir) / "model.keras"))
        with _strategy_scope(config):
            teachers.append(load_teacher(teacher_paths[-1], expected_model=config.teacher_model))
    if distill_config.uses_teachers is False:
        teachers = []
    keras.utils.set_random_seed(config.seed)  # the student's initial weights are the seed's
    with _strategy_scope(config):
        student = build_model(config.model, splits)
        distiller = Distiller(student, teachers, distill_config, weight_decay=config.weight_decay)
    extra = {"method": config.method, "teacher_model": config.teacher_model,
             "teachers": teacher_paths, "distill_config": dataclasses.asdict(distill_config),
             **_normalization_record(student)}
    return fit(distiller, splits, config, run_dir, save_name="student.keras",
               extra_results=extra)
