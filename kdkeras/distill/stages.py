"""Multi-stage distillation: teacher → assistant(s) → student.

Chou, Chiu & Liao (2021, Sec. V-B) distil ResNet-50 into ResNet-10 in two
stages, through a ResNet-18: when the gap between teacher and student is
large, an intermediate model learns from the teacher first and then teaches the
student (the teacher-assistant idea of Mirzadeh et al., 2020). Each stage is an
ordinary `distill_model` run; stage i's saved student is stage i+1's teacher:

    chain = ("resnet50", "resnet18", "resnet10")
    stage 1: resnet50 (K teachers) → resnet18
    stage 2: resnet18 (stage 1's student) → resnet10

    results = run_stages(chain, config, workdir="runs/two-stage")
    results[-1]["test_accuracy"]     # the final student

`config` is the first stage's `DistillRunConfig` (its teachers or
`train_teachers`, method, switches, seed and schedule); later stages copy it
with one teacher, the previous stage's student, and any per-stage overrides.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Optional

from kdkeras.training.checkpoints import added_at_default, field_defaults
from kdkeras.training.config import DistillRunConfig

# Config fields that may differ between a finished run and a request for it.
_IGNORED_FIELDS = ("resume", "overwrite", "verbose", "workdir")


def finished_results(config) -> Optional[dict]:
    """The `results.json` of `config.workdir` if that run finished with this config.

    A finished run is skipped by callers that reuse run directories (stages,
    table reproduction) instead of being re-evaluated; a run with another
    config or more epochs to go returns None (resume it).
    """
    path = Path(config.workdir) / "results.json"
    if not path.exists():
        return None
    try:
        results = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    old, new = results.get("config", {}), _jsonable(config.to_dict())
    defaults = field_defaults(config)
    same = all(old.get(k) == v or added_at_default(k, old, new, defaults)
               for k, v in new.items() if k not in _IGNORED_FIELDS)
    return results if same and results.get("epochs") == config.epochs else None


def _jsonable(value):
    """What a config value reads back as from JSON (tuples become lists)."""
    return json.loads(json.dumps(value))


def stage_workdir(workdir, index: int, teacher: str, student: str) -> str:
    """`<workdir>/stage<i>-<teacher>-<student>`, `index` counted from 1."""
    return str(Path(workdir) / f"stage{index}-{teacher}-{student}")


def stage_configs(chain: Sequence[str], config: DistillRunConfig, *, workdir=None,
                  stage_overrides: Optional[Sequence[Mapping]] = None) -> list[DistillRunConfig]:
    """The configs of every stage; stage i+1's teacher is stage i's `student.keras`.

    Args:
      chain: model names, teacher first and final student last (at least two).
      config: the first stage's run config; its `model`/`teacher_model` are
        replaced by the chain's.
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


def run_stages(chain: Sequence[str], config: DistillRunConfig, *, workdir=None, splits=None,
               stage_overrides: Optional[Sequence[Mapping]] = None,
               skip_finished: bool = True) -> list[dict]:
    """Runs the stages in order; returns each stage's results (the last is the student).

    Each stage is `kdkeras.training.runs.distill_model` in its own directory,
    so `resume=True` continues an interrupted chain where it stopped. With
    `skip_finished`, a stage whose directory holds a finished run of the same
    config is read back instead of being evaluated again.

    Returns:
      A list of results dicts (those of `distill_model`), each with `stage`
      (1-based) and `workdir` added.
    """
    from kdkeras.training.runs import distill_model

    results = []
    for i, stage_config in enumerate(stage_configs(chain, config, workdir=workdir,
                                                   stage_overrides=stage_overrides)):
        done = finished_results(stage_config) if skip_finished else None
        if done is None:
            print(f"Stage {i + 1}/{len(chain) - 1}: {stage_config.teacher_model} -> "
                  f"{stage_config.model} in {stage_config.workdir}", flush=True)
            done = distill_model(stage_config, splits)
        results.append({**done, "stage": i + 1, "workdir": stage_config.workdir})
    return results
