"""Runs (or reads back) the rows of the paper's tables and writes one file per table.

    from kdkeras.reproduce import Settings, reproduce
    failed = reproduce([2, 5], Settings.for_preset("smoke", dataset="synthetic"))

Each row of a table (`kdkeras.reproduce.tables`) is an ordinary run
(`kdkeras.training.runs.run`) with its own directory under
`Settings.runs_dir`, named by what it is (`kdkeras.reproduce.settings`), so a
run that several tables share is trained once, and the K teachers of a pair
are trained once into `<runs_dir>/<scale>/models/<teacher>/seed-<k>` and reused
by every table. Re-running skips finished runs and resumes unfinished ones.
Each table is written to `<results_dir>/table_<N>.json`: every row's top-1 as
mean ± std over seeds (and the per-seed values and curves), the gap to the
table's baseline, provenance (git commit, preset, seeds, data sizes, epochs,
machine, date) and, for the tables with cost columns, params / FLOPs / batch-1
latency (`kdkeras.reproduce.records`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Optional

import keras

from kdkeras.data import DataError, load_dataset
from kdkeras.reporting.tables_io import write_table_record
from kdkeras.reproduce import records
from kdkeras.reproduce import tables as paper_tables
from kdkeras.reproduce.model_cost import ModelCosts
from kdkeras.reproduce.records import TEACHER_MODELS
from kdkeras.reproduce.settings import SYNTHETIC, Settings
from kdkeras.training.config import DistillRunConfig, TrainConfig, resolve_config
from kdkeras.training.guards import TrainingInterrupted
from kdkeras.training.runs import finished_results, options_slug, run, run_stages


class Reproducer:
    """Runs (or reads back) the rows of tables, sharing data, teachers and runs."""

    def __init__(self, settings: Settings):
        self.s = settings
        self.costs = ModelCosts(settings.latency_repeats)
        self._splits = {}
        self._results = {}        # workdir -> results dict of a finished run
        self.log = []              # (label, workdir, "trained" | "skipped" | "planned" | "given")
        self._read_only = False    # True while a row not in `settings.rows` is read back

    # --- data and configs -----------------------------------------------------
    def splits(self, family: str):
        if family not in self._splits:
            dataset, data_dir = self.s.family_dataset(family)
            if dataset == "synthetic":
                self._splits[family] = load_dataset("synthetic", **SYNTHETIC)
            else:
                if dataset == "imagenet64" and not data_dir:
                    raise FileNotFoundError(
                        "The MobileNet tables run on ImageNet 64x64: pass --imagenet_data_dir "
                        "(the folder of the npz batches), or --dataset=synthetic.")
                self._splits[family] = load_dataset(dataset, data_dir)
        return self._splits[family]

    def config(self, cls, family: str, workdir: Path, **values):
        dataset, data_dir = self.s.family_dataset(family)
        config = resolve_config(cls, self.s.preset, dataset, data_dir=data_dir,
                                workdir=str(workdir), resume=True, verbose=self.s.verbose,
                                **{**dict(self.s.overrides), **values})
        # A preset's subset larger than the data (e.g. smoke's 256 on the 64
        # synthetic images) means all of it; the input pipeline refuses it.
        splits = self.splits(family)
        fixes = {name: n for name, n in (("train_subset", splits.num_train),
                                         ("test_subset", splits.num_test))
                 if getattr(config, name) is not None and getattr(config, name) > n}
        return dataclasses.replace(config, **fixes) if fixes else config

    def root(self, family: str) -> Path:
        return Path(self.s.runs_dir) / self.s.scale_tag(family)

    # --- runs ---------------------------------------------------------------------
    def _run(self, config, label: str, family: str):
        """Reads back a finished run or trains/resumes it (`runs.run`); caches by workdir."""
        key = config.workdir
        if key in self._results:
            return self._results[key]
        done = finished_results(config)
        if done is not None:
            self.log.append((label, key, "skipped"))
        elif self.s.dry_run or self._read_only:
            self.log.append((label, key, "planned" if self.s.dry_run else "not selected"))
            return None
        else:
            start = time.perf_counter()
            print(f"  run {label}: {key}", flush=True)
            # One checkpoint as all K teachers (smoke) is meant: told so.
            done = run(config, self.splits(family),
                       allow_duplicate_teachers=self.s.reuse_one_teacher)
            keras.backend.clear_session()
            self.log.append((label, key, "trained"))
            print(f"    top-1 {100 * done['test_accuracy']:.2f}% in "
                  f"{time.perf_counter() - start:.1f} s", flush=True)
        self._results[key] = done
        return done

    def model_dir(self, model: str, seed: int, family: str) -> Path:
        """Where `model` trained alone with `seed` lives (teachers: teachers_dir if given)."""
        if model in TEACHER_MODELS and self.s.teachers_dir:
            root = Path(self.s.teachers_dir)
            # experiments/train.py runs collected as <model>-s<k> are found too.
            other = root / f"{model}-s{seed}"
            if (other / "model.keras").exists():
                return other
            if (other / "results.json").exists():
                # A teacher's records committed without its weights (too large for git):
                # training a fresh one in its place would silently change the teacher.
                raise ValueError(
                    f"{other} holds the records of a {model} teacher (seed {seed}) but not "
                    f"its weights (model.keras). Copy or train that teacher there (its "
                    f"results.json records the recipe, the folder's README the command), or "
                    f"pass a --teachers_dir that holds the weights.")
            return root / model / f"seed-{seed}"
        return self.root(family) / "models" / model / f"seed-{seed}"

    def train(self, model: str, seed: int, family: str):
        """`model` trained alone: a teacher, or a student's baseline."""
        workdir = self.model_dir(model, seed, family)
        values = dict(model=model, seed=seed)
        if model in TEACHER_MODELS and self.s.teacher_epochs:
            values.update(epochs=self.s.teacher_epochs,
                          lr_decay_every=self.s.teacher_lr_decay_every)
        if model in TEACHER_MODELS and self.s.teachers_dir:
            given = _read_results(workdir)
            if given is not None:  # a teacher handed over as it is, whatever its recipe
                self._results.setdefault(str(workdir), given)
                self.log.append((f"{model} teacher, seed {seed}", str(workdir), "given"))
                return given
        cfg = self.config(TrainConfig, family, workdir, **values)
        return self._run(cfg, f"{model} alone, seed {seed}", family)

    def check_teachers_dir(self, numbers) -> None:
        """Fails before any run if teachers_dir holds records of these tables' teachers
        without their weights (`model_dir` says which)."""
        if not self.s.teachers_dir:
            return
        for n in numbers:
            table = paper_tables.get(n)
            # Teachers 0..K-1 of its rows; a "Teacher" row trains one per run seed.
            k = max(row.num_teachers for row in table.rows)
            for seed in sorted(set(range(k)) | set(self.s.seeds)):
                self.model_dir(paper_tables.PAIRS[table.pair].teacher, seed, table.family)

    def teacher_paths(self, model: str, k: int, family: str) -> list[str]:
        """K teacher checkpoints (seeds 0..K-1), trained first where missing."""
        seeds = [0] * k if self.s.reuse_one_teacher else list(range(k))
        for seed in sorted(set(seeds)):
            self.train(model, seed, family)
        return [str(self.model_dir(model, s, family) / "model.keras") for s in seeds]

    def distill(self, row: paper_tables.Run, seed: int, family: str):
        teachers = self.teacher_paths(row.teacher, row.num_teachers, family)
        workdir = (self.root(family) / "distill" / f"{row.teacher}-{row.model}"
                   / options_slug(row.method, row.options, row.num_teachers) / f"seed-{seed}")
        cfg = self.config(DistillRunConfig, family, workdir, model=row.model,
                          teacher_model=row.teacher, teachers=tuple(teachers), method=row.method,
                          distill_options=row.options, seed=seed)
        return self._run(cfg, f"{row.label}, seed {seed}", family)

    def stages(self, row: paper_tables.Run, seed: int, family: str):
        teachers = self.teacher_paths(row.chain[0], row.num_teachers, family)
        workdir = (self.root(family) / "stages" / "-".join(row.chain)
                   / options_slug(row.method, row.options, row.num_teachers) / f"seed-{seed}")
        first = self.config(DistillRunConfig, family, workdir, model=row.chain[1],
                            teacher_model=row.chain[0], teachers=tuple(teachers),
                            method=row.method, distill_options=row.options, seed=seed)
        results = run_stages(row.chain, first, until=row.stage, run_stage=lambda cfg, i: self._run(
            cfg, f"{row.label} [stage {i}], seed {seed}", family))
        return results[-1] if len(results) == (row.stage or len(row.chain) - 1) else None

    def run_row(self, row: paper_tables.Run, seed: int, family: str):
        if row.kind == paper_tables.TRAIN:
            return self.train(row.model, seed, family)
        if row.kind == paper_tables.DISTILL:
            return self.distill(row, seed, family)
        return self.stages(row, seed, family)

    # --- a table ------------------------------------------------------------------
    def not_applicable(self, row: paper_tables.Run) -> Optional[str]:
        """Why a row cannot run with these models' taps, or None."""
        depth = row.cross_depth
        if depth is None:
            return None
        needed = (max(depth) if isinstance(depth, (tuple, list)) else depth) + 1
        names = list(row.chain) or [row.model, row.teacher]
        have = min(self.costs.tap_count(m) for m in names)
        if needed > have:
            return (f"cross_depth={depth} needs {needed} taps; "
                    f"{'/'.join(names)} expose {have} (kdkeras.models.tap_names)")
        return None

    def row_record(self, row: paper_tables.Run, family: str) -> dict:
        """One row over every seed: its runs, top-1 mean ± std, or why it has none."""
        record = records.row_fields(row)
        reason = self.not_applicable(row)
        if reason:
            print(f"  skip {row.label}: {reason}", flush=True)
            return {**record, "status": "not_applicable", "reason": reason}
        runs, status = [], None
        self._read_only = bool(self.s.rows) and row.label not in self.s.rows
        try:
            for seed in self.s.seeds:
                results = self.run_row(row, seed, family)
                if results is not None:
                    runs.append((seed, results))
        except TrainingInterrupted:
            raise  # a stop asked for (SIGTERM, Ctrl-C) stops every table, not just this row
        except Exception as err:  # noqa: BLE001 - one failed row must not lose the table
            if os.environ.get("KDKERAS_DEBUG"):
                raise
            print(f"  error in {row.label}: {type(err).__name__}: {err}", file=sys.stderr,
                  flush=True)
            status, record["reason"] = "error", f"{type(err).__name__}: {err}"
        finally:
            self._read_only = False
        status = status or ("ok" if len(runs) == len(self.s.seeds) else "missing")
        return {**record, "status": status, **records.seeds_record(runs)}

    def table(self, table: paper_tables.Table) -> tuple[dict, int]:
        """Runs (or reads back) every row of `table`; returns its record and failed rows."""
        rows = [self.row_record(row, table.family) for row in table.rows]
        errors = sum(r["status"] == "error" for r in rows)
        record = records.table_record(table, rows, records.scale_record(self.s, table, rows))
        if table.cost:
            record["cost"] = self.cost_columns(table)
        return record, errors

    def cost_columns(self, table: paper_tables.Table) -> dict:
        """Each model's cost, and teacher/student ratios as `kdkeras.utils.cost.cost_report`."""
        names = records.cost_models(table)
        per_model = {name: self.costs.cost(name) for name in names}
        return {"models": per_model, "ratios": records.cost_ratios(names, per_model),
                "note": self.costs.note()}


def _read_results(workdir: Path) -> Optional[dict]:
    path = Path(workdir) / "results.json"
    if not (path.exists() and (Path(workdir) / "model.keras").exists()):
        return None
    return json.loads(path.read_text())


@contextlib.contextmanager
def _process_state(settings: Settings):
    """The process-wide settings a reproduction runs under, restored afterwards."""
    # Every run ends with `keras.backend.clear_session()`, whose full garbage
    # collection walks every live object; TensorFlow and Keras alone are
    # hundreds of thousands, alive for the whole process. Frozen, they are
    # skipped by every collection (measured: 70% fewer objects walked, 0.2 s
    # less CPU per run).
    gc.collect()
    gc.freeze()
    tf_options = None
    if not settings.optimize_graphs and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf_options = tf.config.optimizer.get_experimental_options()
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    try:
        yield
    finally:
        if tf_options is not None:
            tf.config.optimizer.set_experimental_options(tf_options)
        gc.unfreeze()


def reproduce(numbers, settings: Settings) -> int:
    """Reproduces the tables `numbers`; writes their JSON; returns the number of failed rows."""
    with _process_state(settings):
        return _reproduce(numbers, settings)


def _reproduce(numbers, settings: Settings) -> int:
    labels = {r.label for n in numbers for r in paper_tables.get(n).rows}
    unknown = set(settings.rows) - labels
    if unknown:
        raise ValueError(f"Rows {sorted(unknown)} are not in tables {list(numbers)}. "
                         f"Their rows: {sorted(labels)}.")
    rep = Reproducer(settings)
    rep.check_teachers_dir(numbers)
    failed = 0
    for n in numbers:
        table = paper_tables.get(n)
        start = time.perf_counter()
        print(f"Table {n}: {table.title} [{settings.scale_tag(table.family)}]", flush=True)
        try:
            rep.splits(table.family)
        except (OSError, ValueError, DataError) as err:
            if os.environ.get("KDKERAS_DEBUG"):
                raise
            print(f"error: Table {n} skipped: {err}", file=sys.stderr, flush=True)
            failed += 1
            continue
        record, errors = rep.table(table)
        failed += errors
        if settings.dry_run:
            continue
        path = Path(settings.results_dir) / f"table_{n}.json"
        written, replaced = write_table_record(path, record, Path(settings.runs_dir) / "rejected")
        if not replaced:   # a failed run never replaces a file with more finished rows
            print(f"  kept {path}: it holds rows this run did not finish; this run's record "
                  f"is {written}", file=sys.stderr, flush=True)
            failed = failed or 1
        print(f"  -> {written} ({record['status']}, {time.perf_counter() - start:.1f} s)",
              flush=True)
    if settings.dry_run:
        runs = {key: (label, state) for label, key, state in rep.log}
        for key, (label, state) in runs.items():
            print(f"{state:8s} {key}  ({label})")
        print(f"{sum(s == 'planned' for _, s in runs.values())} runs to train, "
              f"{sum(s == 'skipped' for _, s in runs.values())} finished.")
    return failed


# The cost of a row of each pair relative to a VGG row, read off a smoke
# reproduction of all tables on 2 CPU cores: ResNet-50's runs (its teachers
# above all) cost several times the others'. Only the balance of --jobs uses it.
_ROW_COST = {"vgg": 1.0, "resnet": 1.4, "mobilenet": 1.2, "resnet50": 5.0}


def split_by_pair(numbers, jobs: int) -> list[list[int]]:
    """The tables in at most `jobs` groups of whole pairs, balanced by their run counts."""
    by_pair = {}
    for n in numbers:
        by_pair.setdefault(paper_tables.get(n).pair, []).append(n)
    weight = {p: sum(len(paper_tables.get(n).rows) for n in ns) * _ROW_COST.get(p, 1.0)
              for p, ns in by_pair.items()}
    groups = [[] for _ in range(min(jobs, len(by_pair)))]
    loads = [0] * len(groups)
    for pair in sorted(by_pair, key=weight.get, reverse=True):
        i = loads.index(min(loads))
        groups[i] += by_pair[pair]
        loads[i] += weight[pair]
    return [sorted(g) for g in groups]
