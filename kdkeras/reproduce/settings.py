"""What a reproduction depends on besides the tables, and how its run directories are named.

A run's directory is named by what the run is (data, scale, models, method,
switches, K, seed), never by the table it appears in, so that tables share runs
and a re-run with the same settings finds them:

    <runs_dir>/<scale_tag>/models/<model>/seed-<s>
    <runs_dir>/<scale_tag>/distill/<teacher>-<student>/<options_slug>/seed-<s>
    <runs_dir>/<scale_tag>/stages/<chain>/<options_slug>/seed-<s>/stage<i>-...

`scale_tag` and `options_slug` (`kdkeras.training.runs`) are therefore part of
the on-disk format: changing either orphans every finished run.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from kdkeras.training.config import DEFAULT_PRESET

# Smoke data: tiny, few classes, learnable in one epoch (kdkeras.data.synthetic).
SYNTHETIC = dict(num_train=64, num_test=32, num_classes=5, image_shape=(16, 16, 3), seed=0)
LATENCY_REPEATS = {"paper": 50, "fast": 30, "smoke": 3}
# The overrides that change what a run computes, and their letters in `scale_tag`.
SCALE_OVERRIDES = {"epochs": "e", "batch_size": "b", "lr_decay_every": "d", "train_subset": "n",
                   "test_subset": "t"}
# The config overrides a reproduction may carry (`Settings.overrides`).
OVERRIDE_NAMES = (*SCALE_OVERRIDES, "jit_compile")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything a reproduction depends on besides the tables themselves.

    The defaults are `for_preset(DEFAULT_PRESET, dataset="synthetic")`'s
    (`kdkeras.training.config.DEFAULT_PRESET`, the paper's schedule).

    Attributes:
      preset: "paper", "fast" or "smoke" (`kdkeras.training.config`).
      seeds: the seeds of every row; results are mean ± std over them.
      dataset: the data of the CIFAR-100 tables ("synthetic" replaces ImageNet
        64×64 too).
      data_dir, imagenet_data_dir: where the CIFAR-100 and ImageNet 64×64 data are.
      results_dir: where `table_<N>.json` files go.
      runs_dir: where run directories (and teachers) go.
      overrides: (name, value) pairs of `OVERRIDE_NAMES` applied to every run.
      reuse_one_teacher: one teacher checkpoint stands for all K (plumbing only).
      teacher_epochs: the teachers' epochs, if not the preset's; their learning
        rate then decays ×0.1 four times (`teacher_lr_decay_every`), as the
        paper's 200 epochs decay every 50.
      teachers_dir: teachers handed over (`Reproducer.model_dir`).
      latency_repeats: timed batch-1 calls per model for the cost columns.
      dry_run: list the runs, train nothing.
      rows: if not empty, train only the rows with these labels; the others
        are read back where finished and reported missing otherwise.
      verbose: Keras fit verbosity of each run.
      optimize_graphs: let TensorFlow's graph optimiser (grappler) rewrite each
        traced step. It pays back over thousands of steps; a smoke run executes
        each graph about four times, and optimising ResNet-50 graphs took
        about a quarter of their runs' CPU time (measured on Table 19), so
        smoke turns it off. Numbers change only by float round-off.
    """

    preset: str = DEFAULT_PRESET
    seeds: tuple = (0, 1, 2)
    dataset: str = "synthetic"             # the CIFAR-100 tables' data
    data_dir: Optional[str] = None
    imagenet_data_dir: Optional[str] = None
    results_dir: str = "results"
    runs_dir: str = "runs/reproduce"
    overrides: tuple = ()                  # (name, value) pairs: epochs, batch_size, ...
    reuse_one_teacher: bool = False
    teacher_epochs: Optional[int] = None
    teachers_dir: Optional[str] = None
    latency_repeats: int = LATENCY_REPEATS[DEFAULT_PRESET]
    dry_run: bool = False
    rows: tuple = ()
    verbose: int = 0
    optimize_graphs: bool = True

    @classmethod
    def for_preset(cls, preset: str, *, dataset: str, seeds: Optional[int] = None,
                   reuse_one_teacher: Optional[bool] = None,
                   latency_repeats: Optional[int] = None, overrides: Optional[dict] = None,
                   **values) -> "Settings":
        """Settings with the preset's defaults for every option left None.

        Smoke defaults to one seed, one teacher checkpoint as all K, few
        latency repeats and no graph optimisation: it tests the plumbing, not
        the method. `overrides` None values mean "the preset's" and are dropped.
        """
        if preset not in LATENCY_REPEATS:
            raise ValueError(f"Unknown preset {preset!r}. Valid presets: "
                             f"{', '.join(LATENCY_REPEATS)}.")
        smoke = preset == "smoke"
        seeds = seeds if seeds is not None else (1 if smoke else 3)
        latency_repeats = LATENCY_REPEATS[preset] if latency_repeats is None else latency_repeats
        for name, value in (("seeds", seeds), ("latency_repeats", latency_repeats)):
            if value < 1:   # 0 is not "the preset's": None is
                raise ValueError(f"--{name} must be >= 1. Received: --{name}={value}.")
        overrides = overrides or {}
        unknown = set(overrides) - set(OVERRIDE_NAMES)
        if unknown:
            raise ValueError(f"Unknown override(s) {sorted(unknown)}. "
                             f"Valid overrides: {', '.join(OVERRIDE_NAMES)}.")
        return cls(preset=preset, seeds=tuple(range(seeds)), dataset=dataset,
                   overrides=tuple((k, overrides[k]) for k in OVERRIDE_NAMES
                                   if overrides.get(k) is not None),
                   reuse_one_teacher=smoke if reuse_one_teacher is None else reuse_one_teacher,
                   latency_repeats=latency_repeats,
                   **{"optimize_graphs": not smoke, **values})

    @property
    def teacher_lr_decay_every(self) -> int:
        """The teachers' decay period under `teacher_epochs`: a quarter of them (at least 1)."""
        return max(1, self.teacher_epochs // 4)

    def family_dataset(self, family: str) -> tuple[str, Optional[str]]:
        """(dataset name, data_dir) of a table family ("cifar" or "imagenet64")."""
        if self.dataset == "synthetic":
            return "synthetic", None
        if family == "imagenet64":
            return "imagenet64", self.imagenet_data_dir
        return self.dataset, self.data_dir

    def scale_tag(self, family: str) -> str:
        """The directory naming a scale: data, preset and every override of it."""
        dataset, _ = self.family_dataset(family)
        tag = f"{dataset}-{self.preset}"
        tag += "".join(f"-{SCALE_OVERRIDES[k]}{v}" for k, v in self.overrides
                       if k in SCALE_OVERRIDES)
        tag += f"-te{self.teacher_epochs}" if self.teacher_epochs else ""
        return tag + ("-one_teacher" if self.reuse_one_teacher else "")


def student_runs(numbers, student: str, slugs=None) -> list:
    """The unique student runs (`kdkeras.training.runs.StudentRun`) of reproduce tables
    `numbers` whose student is `student`, keyed by their run directory's slug.

    `slugs` keeps only those runs; a slug that is not a run of the tables is
    refused with the valid ones. The GPU scripts and the table-engine benchmark
    step these runs (one per distinct method, options and K).
    """
    from kdkeras.reproduce import tables
    from kdkeras.training.runs import StudentRun, options_slug

    runs = {}
    for number in numbers:
        for row in tables.get(int(number)).rows:
            if row.model != student or row.kind not in (tables.TRAIN, tables.DISTILL):
                continue
            k = row.num_teachers if row.kind == tables.DISTILL else 0
            slug = options_slug(row.method, row.options, k) if k else "student"
            runs.setdefault(slug, StudentRun(slug, row.method, row.options, k or None))
    unknown = set(slugs or ()) - set(runs)
    if unknown:
        raise ValueError(f"{sorted(unknown)} are not runs of tables {list(numbers)} for "
                         f"{student}. Valid: {sorted(runs)}.")
    return [r for slug, r in runs.items() if not slugs or slug in slugs]
