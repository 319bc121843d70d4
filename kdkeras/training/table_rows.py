"""The rows of a table as the table engine runs them, and each row's run directory after.

`build_rows` makes one compiled `Distiller` per `StudentRun` exactly as
`kdkeras.training.runs.distill_model` would for that run alone (the student's
initial weights are its seed's, the first K teachers, the run's weight decay
and optimizer), sharing the teacher models between rows so that the engine
runs each teacher once per batch. `write_row_results` leaves in
`<root>/<row>-s<seed>/` what `distill_model` leaves: `student.keras` and a
`results.json` with the row's history, test accuracy and provenance.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import keras

from kdkeras import models
from kdkeras.distill import Distiller, init_stage, method_config
from kdkeras.training.config import DistillRunConfig, TrainConfig, preset_label
from kdkeras.training.runs import StudentRun
from kdkeras.training.provenance import provenance, write_json_atomic
from kdkeras.training.table_engine import EngineRow
from kdkeras.training.trainer import make_optimizer, run_schedule, save_model_atomic


def build_rows(runs: Sequence[StudentRun], teachers: Sequence[keras.Model],
               config: DistillRunConfig, *, num_classes: int, input_shape: tuple,
               input_normalization="cifar100", seed: int | None = None) -> list[EngineRow]:
    """One `EngineRow` per run: `config.model` distilled by the run's method from its first K teachers.

    `seed` (default `config.seed`) gives every row's initial student weights
    and data order, as one `distill_model` run of that seed would.
    `input_normalization` is the students' (`kdkeras.models.get`): the
    training images' (mean, std), as `kdkeras.training.runs.build_model` uses.
    """
    seed = config.seed if seed is None else int(seed)
    rows = []
    for run in runs:
        distill_config = method_config(run.method, **dict(run.options))
        k = len(teachers) if run.num_teachers is None else run.num_teachers
        if distill_config.uses_teachers and k > len(teachers):
            raise ValueError(f"Row {run.name!r} needs {k} teachers; {len(teachers)} were given.")
        row_teachers = list(teachers[:k]) if distill_config.uses_teachers else []
        keras.utils.set_random_seed(seed)  # the student's initial weights are the seed's
        student = models.get(config.model, num_classes=num_classes, input_shape=input_shape,
                             input_normalization=input_normalization)
        distiller = Distiller(student, row_teachers, distill_config,
                              weight_decay=config.weight_decay)
        # Two-stage FSP: its stage length is a constant of the compiled step.
        init_stage.set_stage_epochs(distiller, config.epochs)
        distiller.compile(optimizer=make_optimizer(config), jit_compile=True)
        distiller.optimizer.build(distiller.trainable_variables)
        rows.append(EngineRow(f"{run.name}-s{seed}", distiller, seed))
    return rows


def teacher_rows(config: TrainConfig, seeds: Sequence[int], *, num_classes: int,
                 input_shape: tuple, input_normalization="cifar100") -> list[EngineRow]:
    """K teachers trained together: `config.model` alone, one row per seed (its own weights
    and data order), as `kdkeras.training.runs.train_model` trains each."""
    rows = []
    for seed in seeds:
        keras.utils.set_random_seed(int(seed))
        model = models.get(config.model, num_classes=num_classes, input_shape=input_shape,
                           input_normalization=input_normalization)
        trainer = Distiller(model, [], method_config("student"), weight_decay=config.weight_decay)
        trainer.compile(optimizer=make_optimizer(config), jit_compile=True)
        trainer.optimizer.build(trainer.trainable_variables)
        rows.append(EngineRow(f"teacher-{seed}", trainer, int(seed)))
    return rows


def write_row_results(engine, history: dict, root, config: TrainConfig, *, scale: dict,
                      extra: dict | None = None) -> dict:
    """Saves every row's student and `results.json` under `root/<row name>/`; returns a summary.

    Call after `engine.write_back()`. `scale` describes the data (dataset,
    num_train, num_test, ...) for the provenance.
    """
    root = Path(root)
    summary = {"rows": []}
    tested = engine.evaluate() if engine.test is not None else [None] * len(engine.rows)
    for row, test in zip(engine.rows, tested):
        run_dir = root / row.name
        run_dir.mkdir(parents=True, exist_ok=True)
        d = row.distiller
        saved = save_model_atomic(d.student, run_dir / "student.keras")
        rows_history = history[row.name]
        schedule = run_schedule(dataclasses.replace(config, epochs=len(rows_history)), scale)
        results = {
            "model": d.student.name, "row": row.name, "method": d.config.method,
            "num_teachers": len(d.teachers) if d.has_kd else 0,
            "test_accuracy": None if test is None else test["accuracy"],
            "test_loss": None if test is None else test["loss"],
            "best_test_accuracy": max((h.get("val_accuracy", 0.0) for h in rows_history),
                                      default=None),
            "epochs": len(rows_history), "saved_model": saved.name,
            "data_path": "device (kdkeras.data.device_batches, table engine)",
            "distill_config": dataclasses.asdict(d.config), "config": config.to_dict(),
            "history": rows_history, **(extra or {}), "schedule": schedule,
            "provenance": provenance(preset=preset_label(config.preset, schedule), seed=row.seed,
                                     epochs=len(rows_history), **scale),
        }
        write_json_atomic(run_dir / "results.json", results)
        summary["rows"].append({k: results[k] for k in ("row", "method", "num_teachers",
                                                        "test_accuracy", "best_test_accuracy")})
    return summary
