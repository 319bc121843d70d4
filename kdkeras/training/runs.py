"""Runs: what a run is, where it lives, whether it is finished, and running it.

A run is a config (`kdkeras.training.config`): a `TrainConfig` trains
`config.model` from scratch, a `DistillRunConfig` distils it from K teachers
(given, or trained first); either names the data, the schedule, the method
and its `DistillConfig` options, the seed and its directory, `config.workdir`.
Everything that runs training calls this module: the CLIs (`experiments/`),
the main job, the reproduce engine, N-stage KD, the ensemble study and the
GPU runner.

- `run(config, data)`: reads back a finished run of this config, or trains it
  (resuming from its last checkpoint); `train_model` / `distill_model` train
  (or resume) without the read-back, as the CLIs do.
- `finished_results(config)`: the finished run in `config.workdir`, if it is this
  run (the one rule of "the same run": `checkpoints.run_differences`).
- `run_stages(chain, config)`: teacher -> assistant(s) -> student, each stage a run.
- `compare_methods(base, data, ...)`: K teachers once, then a student per
  method (or table row) and seed, with a `summary.json`.
- `options_slug(method, options, k)`: the directory name of a student run.

The data (`splits`, or `data`) is what `kdkeras.data.load_dataset` returns (fed by tf.data) or an
`ArraySplits` (`kdkeras.data.numpy_data`, fed as arrays: the JAX path, no
TensorFlow); `kdkeras.training.trainer.input_pipelines` picks the feed. They
validate their inputs before any compute.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Optional

import keras

from kdkeras import models
from kdkeras.distill import Distiller, method_config
from kdkeras.models.normalization import ensure_input_normalization
from kdkeras.training.checkpoints import field_defaults, prepare_run_dir, run_differences
from kdkeras.training.config import DistillRunConfig, TrainConfig
from kdkeras.training.preflight import (check_run_config, check_teacher_input,
                                        check_teacher_paths, check_writable_dir)
from kdkeras.training.provenance import accelerator, provenance, write_json_atomic
from kdkeras.training.run_lock import RunLock
from kdkeras.training.strategy import chief_writes, get_strategy
from kdkeras.training.teacher_recipes import check_init_from, initialise_from
from kdkeras.training.trainer import data_scale, fit_in_run_dir


class TeacherError(ValueError):
    """A teacher checkpoint is missing, unreadable or does not fit the run."""


def load_data(config: TrainConfig):
    """The splits of `config.dataset` (tf.data-fed), loaded from `config.data_dir`."""
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


def _checked_splits(config: TrainConfig, splits):
    """The checks every run makes before any work; the splits (loaded if not given)."""
    models.spec(config.model)
    check_run_config(config)
    check_writable_dir(config.workdir, "--workdir")
    splits = splits or load_data(config)
    _check_batch(config, splits)
    return splits


def _run_dir(config: TrainConfig) -> Path:
    return prepare_run_dir(config.workdir, config.to_dict(), resume=config.resume,
                           overwrite=config.overwrite, defaults=field_defaults(config))


def _fit_new_model(config: TrainConfig, splits, run_dir, trainer_of, save_name: str,
                   extra_results: dict) -> dict:
    """Builds `config.model` from the seed, `trainer_of(model)` trains it in `run_dir`."""
    keras.utils.set_random_seed(config.seed)  # the initial weights are the seed's
    with _strategy_scope(config):
        model = build_model(config.model, splits)
        trainer = trainer_of(model)
    return fit_in_run_dir(trainer, splits, config, run_dir, save_name=save_name,
                          extra_results={**extra_results, **_normalization_record(model)})


@chief_writes  # strategy='multiworker': only the chief writes in config.workdir
def train_model(config: TrainConfig, splits=None) -> dict:
    """Trains (or resumes) `config.model` from scratch: the `student` method, no teachers."""
    if config.init_from:
        check_init_from(config.init_from)
    splits = _checked_splits(config, splits)

    def trainer_of(model):
        if config.init_from:   # a branched teacher (teacher_recipes): its parent's weights
            initialise_from(model, config.init_from)
        return Distiller(model, [], method_config("student"), weight_decay=config.weight_decay)

    with RunLock(config.workdir):   # one process at a time in a run directory
        return _fit_new_model(config, splits, _run_dir(config), trainer_of, "model.keras", {})


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
                  allow_duplicate_teachers: bool = False) -> dict:
    """Distils (or resumes distilling) `config.model` from K teachers, given or trained first.

    `allow_duplicate_teachers`: accept one checkpoint given more than once (with
    a warning), as the smoke reproduction does to test the K-teacher plumbing.
    """
    models.spec(config.teacher_model)
    check_teacher_paths(config.teachers)
    check_duplicate_teacher_paths(config.teachers, allow_duplicate_teachers)
    distill_config = method_config(config.method, **dict(config.distill_options))
    splits = _checked_splits(config, splits)
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
        return _distill_in_run_dir(config, splits, distill_config, teachers, teacher_paths)


def _distill_in_run_dir(config, splits, distill_config, teachers, teacher_paths) -> dict:
    run_dir = _run_dir(config)
    for tcfg in teacher_configs(config):
        print(f"Training teacher {tcfg.model} (seed {tcfg.seed}) in {tcfg.workdir}", flush=True)
        train_model(tcfg, splits)
        teacher_paths.append(str(Path(tcfg.workdir) / "model.keras"))
        with _strategy_scope(config):
            teachers.append(load_teacher(teacher_paths[-1], expected_model=config.teacher_model))
    if distill_config.uses_teachers is False:
        teachers = []
    extra = {"method": config.method, "teacher_model": config.teacher_model,
             "teachers": teacher_paths, "distill_config": dataclasses.asdict(distill_config)}
    return _fit_new_model(
        config, splits, run_dir, lambda student: Distiller(
            student, teachers, distill_config, weight_decay=config.weight_decay),
        "student.keras", extra)


# --------------------------------------------------------------------------- finished runs


def finished_results(config: TrainConfig) -> Optional[dict]:
    """The `results.json` of `config.workdir` if that run finished as this same run.

    "The same run" is `kdkeras.training.checkpoints.run_differences` (every field
    but where and how verbosely it runs, including the epochs); a run with
    another config, or with epochs still to go, gives None (resume it).
    """
    path = Path(config.workdir) / "results.json"
    if not path.exists():
        return None
    try:
        results = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    same = not run_differences(results.get("config", {}), config.to_dict(),
                               field_defaults(config))
    return results if same and results.get("epochs") == config.epochs else None


def run(config: TrainConfig, splits=None, *, allow_duplicate_teachers: bool = False) -> dict:
    """The results of `config`: read back if it finished, else trained (or resumed) now.

    A `DistillRunConfig` distils (`distill_model`), a `TrainConfig` trains from
    scratch (`train_model`); `allow_duplicate_teachers` as `distill_model`'s.
    """
    done = finished_results(config)
    if done is not None:
        return done
    if isinstance(config, DistillRunConfig):
        return distill_model(config, splits, allow_duplicate_teachers=allow_duplicate_teachers)
    return train_model(config, splits)


# --------------------------------------------------------------------------- stages


def stage_workdir(workdir, index: int, teacher: str, student: str) -> str:
    """`<workdir>/stage<i>-<teacher>-<student>`, `index` counted from 1."""
    return str(Path(workdir) / f"stage{index}-{teacher}-{student}")


def stage_configs(chain: Sequence[str], config: DistillRunConfig, *, workdir=None,
                  stage_overrides: Optional[Sequence[Mapping]] = None) -> list[DistillRunConfig]:
    """The runs of a teacher -> assistant(s) -> student chain (Chou et al., Sec. V-B).

    When teacher and student are far apart an intermediate model learns from
    the teacher first and then teaches the student (the teacher-assistant idea
    of Mirzadeh et al., 2020): ResNet-50 -> ResNet-18 -> ResNet-10 in the paper.
    Stage i+1's one teacher is stage i's `student.keras`.

    Args:
      chain: model names, teacher first and final student last (at least two).
      config: the first stage's run (its teachers or `train_teachers`, method,
        options, seed and schedule); its `model`/`teacher_model` are the chain's.
      workdir: the root of the stage directories (default `config.workdir`).
      stage_overrides: one mapping of `DistillRunConfig` fields per stage
        (e.g. a different method for stage 2), or None.
    """
    chain = list(chain)
    if len(chain) < 2:
        raise ValueError(f"A stage chain needs a teacher and a student. Received: chain={chain}.")
    n = len(chain) - 1
    overrides = list(stage_overrides) if stage_overrides is not None else [{}] * n
    if len(overrides) != n:
        raise ValueError(f"stage_overrides needs one entry per stage ({n}). "
                         f"Received: {len(overrides)} entries.")
    root = workdir if workdir is not None else config.workdir
    configs = []
    for i in range(n):
        values = dict(model=chain[i + 1], teacher_model=chain[i],
                      workdir=stage_workdir(root, i + 1, chain[i], chain[i + 1]))
        if i > 0:
            previous = Path(configs[-1].workdir) / "student.keras"
            values.update(teachers=(str(previous),), train_teachers=0)
        values.update(overrides[i])
        configs.append(dataclasses.replace(config, **values))
    return configs


def run_stages(chain: Sequence[str], config: DistillRunConfig, splits=None, *, workdir=None,
               stage_overrides: Optional[Sequence[Mapping]] = None, until: Optional[int] = None,
               run_stage=None) -> list[dict]:
    """Runs the stages of `stage_configs` in order; returns each one's results.

        results = run_stages(("resnet50", "resnet18", "resnet10"), config)
        results[-1]["test_accuracy"]     # the final student

    Each stage is a `run` in its own directory: a finished stage is read back,
    an interrupted one resumed. `until` stops after that stage (1-based);
    `run_stage(config, index)` replaces `run` (e.g. the reproduce engine's
    cached run). Each results dict gets `stage` (1-based) and `workdir`.
    """
    configs = stage_configs(chain, config, workdir=workdir, stage_overrides=stage_overrides)
    results = []
    for i, stage_config in enumerate(configs[:until]):
        if run_stage is not None:
            done = run_stage(stage_config, i + 1)
        else:   # `run`, saying which stage trains
            done = finished_results(stage_config)
            if done is None:
                print(f"Stage {i + 1}/{len(configs)}: {stage_config.teacher_model} -> "
                      f"{stage_config.model} in {stage_config.workdir}", flush=True)
                done = distill_model(stage_config, splits)
        if done is not None:   # None: a stage the caller only plans (a dry run)
            results.append({**done, "stage": i + 1, "workdir": stage_config.workdir})
    return results


# --------------------------------------------------------------------------- comparisons


def options_slug(method: str, options: tuple, k: int) -> str:
    """`ours-cross_depth3-k3`, `p1-cross_depth_only2-k1`: a student run's directory name.

    Part of the on-disk format (changing it orphans every finished run). A
    method with an initialisation stage (two-stage FSP) says so,
    `fsp-init0.125-k1`: `fsp-k1` directories of earlier versions hold joint FSP.
    """
    from kdkeras.distill import METHODS

    parts = [method]
    fraction = METHODS.get(method, {}).get("init_stage_fraction")
    if fraction and "init_stage_fraction" not in dict(options):
        parts.append(f"init{fraction:g}")
    for name, value in options:
        if isinstance(value, (tuple, list)):
            value = "only" + "_".join(str(v) for v in value)
        parts.append(f"{name}{value}" if not isinstance(value, str) else f"{name}_{value}")
    return "-".join(parts + [f"k{k}"])


@dataclasses.dataclass(frozen=True)
class StudentRun:
    """One student run of `compare_methods`: a method, its overrides and its K.

    `name` names the run directory (`<name>-s<seed>`); `num_teachers` None
    means every teacher given or trained (a table row fixes its own K).
    """

    name: str
    method: str
    options: tuple = ()
    num_teachers: Optional[int] = None

    @classmethod
    def of_method(cls, method: str) -> "StudentRun":
        return cls(name=method, method=method)


def compare_methods(base: DistillRunConfig, data, *, methods, seeds, num_teachers: int, root,
                    teacher_seeds=None, teacher_paths=None) -> dict:
    """K teachers trained once (seeds 0..K-1), then a student per method and seed, all `run`s.

    `base` gives the recipe (preset, epochs, batch, subsets, models); run
    directories go under `root` (`teachers/teacher-k`, `<name>-s<seed>`), and
    `root/summary.json` collects every run's test accuracy with provenance.
    Rerunning reads finished runs back and resumes the others.
    `methods` are method names or `StudentRun`s (e.g. the rows of a reproduce
    table, each with its own options and K, the first K teachers).
    `teacher_seeds` trains only those of the K teachers (e.g. one per process,
    to train them side by side on one GPU); `methods` may then be empty.
    `teacher_paths` (saved `.keras` teachers) replaces the teacher training.
    """
    root = Path(root)
    student_runs = [m if isinstance(m, StudentRun) else StudentRun.of_method(m) for m in methods]
    available = len(teacher_paths) if teacher_paths else num_teachers
    too_many = [r.name for r in student_runs
                if r.num_teachers is not None and r.num_teachers > available]
    if too_many:
        raise ValueError(f"Runs {too_many} need more teachers than the {available} given.")
    teachers_run = dataclasses.replace(base, workdir=str(root), teachers=(),
                                       train_teachers=0 if teacher_paths else num_teachers)
    teacher_paths = list(teacher_paths or [])
    summary = {"teachers": [{"path": p} for p in teacher_paths], "students": [],
               "accelerator": accelerator()}
    for tcfg in teacher_configs(teachers_run):
        if teacher_seeds is not None and tcfg.seed not in teacher_seeds:
            continue
        result = run(tcfg, data)
        teacher_paths.append(str(Path(tcfg.workdir) / "model.keras"))
        summary["teachers"].append({"seed": tcfg.seed, "test_accuracy": result["test_accuracy"]})
        write_json_atomic(root / "summary.json", summary)
    for seed in seeds:
        for student in student_runs:
            teachers = (() if student.method == "student"
                        else tuple(teacher_paths[:student.num_teachers]))
            cfg = dataclasses.replace(base, method=student.method,
                                      distill_options=tuple(student.options), seed=seed,
                                      teachers=teachers, train_teachers=0, resume=True,
                                      overwrite=False, workdir=str(root / f"{student.name}-s{seed}"))
            result = run(cfg, data)
            summary["students"].append({"run": student.name, "method": student.method,
                                        "options": [list(o) for o in student.options],
                                        "seed": seed, "num_teachers": len(teachers),
                                        "test_accuracy": result["test_accuracy"],
                                        "best_test_accuracy": result["best_test_accuracy"]})
            write_json_atomic(root / "summary.json", summary)
    summary["provenance"] = provenance(preset=base.preset, epochs=base.epochs,
                                       **data_scale(data, base))
    write_json_atomic(root / "summary.json", summary)
    return summary
