"""Whole runs on in-memory arrays: the training loop without tf.data, for the JAX backend.

`train_model`/`distill_model` (`kdkeras.training.runs`) feed `tf.data` pipelines
and log to TensorBoard, both TensorFlow. These twins are those same functions
with another input: an `ArraySplits` (`kdkeras.data.numpy_data.load_image_arrays`)
fed as `ArrayBatches`, and no TensorBoard. Everything else is shared: the
configs, the `Distiller`, the optimizer, the learning-rate schedule, the
per-epoch checkpoints (`--resume`), the run directory and its `results.json`
with provenance. Nothing here imports TensorFlow, so they run on the GPU
machine (JAX, no TensorFlow):

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
from pathlib import Path

import keras

from kdkeras.data.numpy_data import ArrayBatches, ArraySplits
from kdkeras.training.config import DistillRunConfig, TrainConfig
from kdkeras.training.provenance import provenance, write_json_atomic
from kdkeras.training.runs import distill_model, teacher_configs, train_model
from kdkeras.training.strategy import process_share
from kdkeras.training.trainer import data_scale, fit_in_run_dir
from kdkeras.training.teacher_recipes import data_order_seed


def array_batches(data: ArraySplits, config: TrainConfig,
                  initial_epoch: int = 0) -> tuple[ArrayBatches, ArrayBatches]:
    """The training batches of epochs `initial_epoch`.. and the test batches of a run.

    As `kdkeras.training.trainer.input_pipelines`: each epoch's order and
    augmentation depend on (seed, epoch) only, so a resumed run sees the
    batches the uninterrupted one saw; a subset at least the data size keeps all.
    Batches are pixels in [0, 255]: the run's models normalise them with
    `data.mean`/`data.std` (`kdkeras.training.runs.build_model`).
    """
    train = ArrayBatches(data.x_train, data.y_train, batch_size=config.batch_size, training=True,
                         seed=data_order_seed(config), augment=config.augment,
                         subset=config.train_subset, initial_epoch=initial_epoch)
    test = ArrayBatches(data.x_test, data.y_test, batch_size=config.batch_size, training=False,
                        augment=False, subset=config.test_subset)
    # Several JAX processes (strategy="multiworker"): each feeds its share of every batch.
    return process_share(train), process_share(test)


def fit_arrays_in_run_dir(model, data: ArraySplits, config: TrainConfig, run_dir, *,
                          save_name: str, extra_results: dict | None = None) -> dict:
    """`kdkeras.training.trainer.fit_in_run_dir` on arrays: no tf.data, no TensorBoard.

    The same loop and callbacks otherwise (`on_nonfinite="skip"` is
    TensorFlow-only); `results.json` records the data path.
    """
    extra = {"data_path": "numpy (kdkeras.data.numpy_data)", **(extra_results or {})}
    return fit_in_run_dir(model, data, config, run_dir, save_name=save_name,
                          extra_results=extra, pipelines=array_batches, tensorboard=False)


def train_arrays(config: TrainConfig, data: ArraySplits) -> dict:
    """`kdkeras.training.runs.train_model` on arrays: `config.model` from scratch."""
    return train_model(config, data, fit=fit_arrays_in_run_dir)


def distill_arrays(config: DistillRunConfig, data: ArraySplits) -> dict:
    """`kdkeras.training.runs.distill_model` on arrays: K teachers (given or trained), then the student."""
    return distill_model(config, data, fit=fit_arrays_in_run_dir)


def accelerator() -> dict:
    """What the run computed on: the JAX devices and versions (part of the summary's provenance)."""
    info = {"backend": keras.backend.backend(), "keras": keras.__version__}
    if info["backend"] == "jax":
        import jax

        info.update(jax=jax.__version__, devices=[f"{d.platform}:{d.device_kind}"
                                                  for d in jax.devices()])
    return info


@dataclasses.dataclass(frozen=True)
class StudentRun:
    """One student run of `compare_methods`: a method, its overrides and its K.

    `name` names the run directory (`<name>-s<seed>`); `num_teachers` None
    means every teacher given or trained (a table row fixes its own K).
    """

    name: str
    method: str
    options: tuple = ()
    num_teachers: int | None = None

    @classmethod
    def of_method(cls, method: str) -> "StudentRun":
        return cls(name=method, method=method)


def compare_methods(base: DistillRunConfig, data: ArraySplits, *, methods, seeds,
                    num_teachers: int, root, teacher_seeds=None, teacher_paths=None) -> dict:
    """K teachers trained once (seeds 0..K-1), then a student per method and seed, all resumable.

    `base` gives the recipe (preset, epochs, batch, subsets, models); run
    directories go under `root` (`teachers/teacher-k`, `<method>-s<seed>`), and
    `root/summary.json` collects every run's test accuracy with provenance.
    Rerunning continues where a killed run stopped (per-epoch checkpoints).
    `methods` are method names or `StudentRun`s (e.g. the rows of a reproduce
    table, each with its own options and K, the first K teachers).
    `teacher_seeds` trains only those of the K teachers (e.g. one per process,
    to train them side by side on one GPU); `methods` may then be empty.
    `teacher_paths` (saved `.keras` teachers) replaces the teacher training.
    """
    root = Path(root)
    runs = [m if isinstance(m, StudentRun) else StudentRun.of_method(m) for m in methods]
    available = len(teacher_paths) if teacher_paths else num_teachers
    too_many = [r.name for r in runs if r.num_teachers is not None and r.num_teachers > available]
    if too_many:
        raise ValueError(f"Runs {too_many} need more teachers than the {available} given.")
    summary = {"teachers": [], "students": [], "accelerator": accelerator()}
    teachers_run = dataclasses.replace(base, workdir=str(root), teachers=(),
                                       train_teachers=0 if teacher_paths else num_teachers)
    teacher_paths = list(teacher_paths or [])
    summary["teachers"] = [{"path": p} for p in teacher_paths]
    for tcfg in teacher_configs(teachers_run):
        if teacher_seeds is not None and tcfg.seed not in teacher_seeds:
            continue
        result = train_arrays(tcfg, data)
        teacher_paths.append(str(Path(tcfg.workdir) / "model.keras"))
        summary["teachers"].append({"seed": tcfg.seed, "test_accuracy": result["test_accuracy"]})
        write_json_atomic(root / "summary.json", summary)
    for seed in seeds:
        for run in runs:
            teachers = () if run.method == "student" else tuple(teacher_paths[:run.num_teachers])
            cfg = dataclasses.replace(base, method=run.method, distill_options=tuple(run.options),
                                      seed=seed, teachers=teachers, train_teachers=0,
                                      resume=True, overwrite=False,
                                      workdir=str(root / f"{run.name}-s{seed}"))
            result = distill_arrays(cfg, data)
            summary["students"].append({"run": run.name, "method": run.method,
                                        "options": [list(o) for o in run.options], "seed": seed,
                                        "num_teachers": len(teachers),
                                        "test_accuracy": result["test_accuracy"],
                                        "best_test_accuracy": result["best_test_accuracy"]})
            write_json_atomic(root / "summary.json", summary)
    summary["provenance"] = provenance(preset=base.preset, epochs=base.epochs,
                                       **data_scale(data, base))
    write_json_atomic(root / "summary.json", summary)
    return summary
