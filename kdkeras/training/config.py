"""Run configurations (frozen dataclasses) and the paper's schedules as presets.

`TrainConfig` holds everything a training run needs; `DistillRunConfig` adds the
distillation switches. Experiment scripts map their flags onto these and nothing
else reads flags (house style rule 5). `resolve_config` applies a preset, then
the user's explicit overrides, so every preset value stays overridable.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

PRESET_NAMES = ("paper", "fast", "demo", "smoke")
# The one default preset: of `TrainConfig()`, `resolve_config`, `kdkeras.reproduce.Settings`
# and the scripts' --preset (experiments/common.py names it too; a test checks they agree).
# The paper's schedule, because reproducing the paper is what kdkeras is for, `TrainConfig`'s
# field defaults (written into every run's config) have always been the paper's, and a
# shortened schedule should be asked for by name (README, "Presets and what they cost").
DEFAULT_PRESET = "paper"

# The paper's schedule (Sec. 4.1): SGD with Nesterov momentum 0.9, lr 1e-2,
# weight decay 1e-4, ×0.1 every 50 epochs, 200 epochs, batch 128; on ImageNet
# 64×64 batch 64, 40 epochs, ×0.1 every 10. `fast` keeps the shape of that
# schedule at a tenth (CIFAR) or a fifth (ImageNet64) of its length, on all the
# data; `demo` is the main job's (experiments/main.py): the `fast` shape at 10
# epochs on 10,000 images, about ten minutes on 2 CPU cores with given teachers;
# `smoke` runs in seconds on a few hundred images for tests. A preset names its
# data size where it is not all the data, so the config of a run says what ran.
_PRESETS = {
    "cifar": {
        "paper": dict(epochs=200, batch_size=128, lr_decay_every=50),
        "fast": dict(epochs=20, batch_size=128, lr_decay_every=5),
        "demo": dict(epochs=10, batch_size=128, lr_decay_every=5, train_subset=10000),
        "smoke": dict(epochs=1, batch_size=32, lr_decay_every=50, train_subset=256,
                      test_subset=128),
    },
    "imagenet64": {
        "paper": dict(epochs=40, batch_size=64, lr_decay_every=10),
        "fast": dict(epochs=8, batch_size=64, lr_decay_every=2),
        "smoke": dict(epochs=1, batch_size=16, lr_decay_every=10, train_subset=128,
                      test_subset=64),
    },
}


def preset_values(preset: str, dataset: str) -> dict:
    """The values a preset sets for a dataset: ImageNet64 has its own schedule, every other
    dataset (CIFAR-100, image folders, synthetic) the CIFAR one."""
    if preset not in PRESET_NAMES:
        raise ValueError(f"Unknown preset {preset!r}. Valid presets: {', '.join(PRESET_NAMES)}.")
    family = "imagenet64" if dataset == "imagenet64" else "cifar"
    if preset not in _PRESETS[family]:
        raise ValueError(f"Preset {preset!r} is the CIFAR main job's; ImageNet64 has "
                         f"{', '.join(_PRESETS['imagenet64'])}. Received: preset={preset!r}.")
    return dict(_PRESETS[family][preset])


def schedule_record(dataset: str, *, epochs, lr_decay_every, batch_size, train_subset,
                    num_train, num_test, lr_decay_factor: float = 0.1) -> dict:
    """A run's schedule, named "paper" only when it is the paper's, else "shortened".

    The paper's: its preset's epochs, learning-rate decay and batch on all the
    training images; anything else is named "shortened" and described beside the
    paper's, so that no result file calls a shortened schedule the paper's.
    """
    paper = preset_values("paper", dataset)
    record = {"epochs": epochs, "lr_decay_every": lr_decay_every,
              "lr_decay_factor": lr_decay_factor, "batch_size": batch_size,
              "train_images": num_train, "test_images": num_test, "train_subset": train_subset}
    same = (epochs == paper["epochs"] and batch_size == paper["batch_size"]
            and lr_decay_every == paper["lr_decay_every"] and train_subset is None
            and math.isclose(lr_decay_factor, 0.1))
    record["name"] = "paper" if same else "shortened"
    record["description"] = (
        f"{epochs} epochs, lr ×{lr_decay_factor:g} every {lr_decay_every}, batch "
        f"{batch_size}, {num_train} training images"
        + ("" if same else f" (the paper: {paper['epochs']} epochs, ×0.1 every "
                           f"{paper['lr_decay_every']}, batch {paper['batch_size']}, all images)"))
    return record


def preset_label(preset: str, schedule: dict) -> str:
    """The preset a result file records: never "paper" for a schedule that is not the paper's."""
    return "paper-shortened" if preset == "paper" and schedule["name"] != "paper" else preset


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One training run. Defaults are `DEFAULT_PRESET`'s schedule on CIFAR (the paper's values)."""

    model: str = "resnet8"
    dataset: str = "cifar100"
    data_dir: Optional[str] = None
    workdir: str = "runs/train"
    preset: str = DEFAULT_PRESET
    seed: int = 0
    epochs: int = _PRESETS["cifar"][DEFAULT_PRESET]["epochs"]
    batch_size: int = _PRESETS["cifar"][DEFAULT_PRESET]["batch_size"]
    learning_rate: float = 1e-2
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    lr_decay_factor: float = 0.1
    lr_decay_every: int = _PRESETS["cifar"][DEFAULT_PRESET]["lr_decay_every"]
    train_subset: Optional[int] = None
    test_subset: Optional[int] = None
    augment: bool = True
    jit_compile: bool = False
    strategy: str = "default"  # "default", "mirrored" or "mirrored:N" (kdkeras.training.strategy)
    on_nonfinite: str = "stop"  # "stop" or "skip" a step with a NaN/Inf loss (training/guards.py)
    resume: bool = False
    overwrite: bool = False
    verbose: int = 2
    # Teacher recipes (kdkeras.training.teacher_recipes; P3, issue 16): start from a saved
    # model at an epoch of the schedule, a data order of its own, snapshots along the way.
    init_from: Optional[str] = None
    start_epoch: int = 0
    data_order_seed: Optional[int] = None
    snapshot_epochs: tuple = ()

    def __post_init__(self):
        _check_positive_int(self, "epochs", "batch_size", "lr_decay_every")
        _check_recipe(self)
        _check_non_negative_float(self, "learning_rate", "momentum", "weight_decay",
                                  "lr_decay_factor")
        for name in ("train_subset", "test_subset"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive int or None. Received: {name}={value!r}.")
        if self.preset not in PRESET_NAMES:
            raise ValueError(
                f"Unknown preset {self.preset!r}. Valid presets: {', '.join(PRESET_NAMES)}.")
        if self.resume and self.overwrite:
            raise ValueError("resume and overwrite exclude each other: pick one.")
        if self.on_nonfinite not in ("stop", "skip"):
            raise ValueError("on_nonfinite must be 'stop' or 'skip'. "
                             f"Received: on_nonfinite={self.on_nonfinite!r}.")
        from kdkeras.training.strategy import parse_strategy

        parse_strategy(self.strategy)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def learning_rate_at(self, epoch: int) -> float:
        """Step decay: lr·factor^(epoch // every), epoch counted from 0."""
        return self.learning_rate * self.lr_decay_factor ** (epoch // self.lr_decay_every)


@dataclasses.dataclass(frozen=True)
class DistillRunConfig(TrainConfig):
    """A distillation run: the training recipe plus teachers, student and method.

    `model` is the student. Teachers come from `teachers` (checkpoint paths) or
    are trained first: `train_teachers` of architecture `teacher_model`, teacher
    k with seed k whatever the student's seed (`kdkeras.training.runs.teacher_configs`),
    so that the student runs of several seeds share one offline ensemble (the paper's P3).
    """

    model: str = "resnet8"
    teacher_model: str = "resnet32"
    teachers: tuple = ()
    train_teachers: int = 0
    method: str = "ours"
    distill_options: tuple = ()  # (name, value) pairs of DistillConfig overrides

    def __post_init__(self):
        super().__post_init__()
        if self.train_teachers < 0:
            raise ValueError(
                f"train_teachers must be >= 0. Received: train_teachers={self.train_teachers}.")
        if self.teachers and self.train_teachers:
            raise ValueError("Pass either teachers (checkpoint paths) or train_teachers=K, not both.")
        recipe = {n: getattr(self, n) for n in _RECIPE_FIELDS
                  if getattr(self, n) != TrainConfig.__dataclass_fields__[n].default}
        if recipe:
            raise ValueError(f"{sorted(recipe)} are teacher-training options "
                             "(experiments/train.py), not of a distillation run. "
                             f"Received: {recipe}.")

    @property
    def num_teachers(self) -> int:
        return len(self.teachers) or self.train_teachers


def resolve_config(cls=TrainConfig, preset: str = DEFAULT_PRESET, dataset: str = "cifar100",
                   **overrides):
    """A `cls` from a preset plus explicit overrides (None overrides are ignored)."""
    values = preset_values(preset, dataset)
    values.update({k: v for k, v in overrides.items() if v is not None})
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - fields - {"preset", "dataset"}
    if unknown:
        raise ValueError(f"Unknown option(s) {sorted(unknown)} for {cls.__name__}.")
    return cls(preset=preset, dataset=dataset, **values)


def _check_positive_int(cfg, *names):
    for name in names:
        value = getattr(cfg, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}.")


def _check_non_negative_float(cfg, *names):
    for name in names:
        value = getattr(cfg, name)
        if not isinstance(value, (int, float)) or math.isnan(value) or math.isinf(value) or value < 0:
            raise ValueError(f"{name} must be a finite non-negative number. Received: {name}={value!r}.")


_RECIPE_FIELDS = ("init_from", "start_epoch", "data_order_seed", "snapshot_epochs")


def _check_recipe(cfg) -> None:
    """The teacher-recipe fields: a start epoch inside the schedule, from a model; snapshot
    epochs inside it."""
    start = cfg.start_epoch
    if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start < cfg.epochs:
        raise ValueError(f"start_epoch must be an int in 0..epochs-1 ({cfg.epochs - 1}). "
                         f"Received: start_epoch={start!r}.")
    if start and not cfg.init_from:
        raise ValueError("start_epoch > 0 continues a schedule from a saved model: pass "
                         f"init_from=<model.keras>. Received: start_epoch={start}.")
    seed = cfg.data_order_seed
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"data_order_seed must be an int or None. Received: {seed!r}.")
    epochs = cfg.snapshot_epochs
    if not isinstance(epochs, (tuple, list)) or any(
            isinstance(e, bool) or not isinstance(e, int) or not start < e <= cfg.epochs
            for e in epochs):
        raise ValueError(f"snapshot_epochs must be epochs in {start + 1}..{cfg.epochs}. "
                         f"Received: snapshot_epochs={epochs!r}.")
