"""Reproduces the paper's Tables 1–20: the runs each needs, then mean ± std over seeds.

    # one table on a GPU with the paper's schedule (200 epochs), 3 seeds:
    python experiments/reproduce.py --table=2 --preset=paper --dataset=cifar100
    # the MobileNet tables on ImageNet 64x64 (npz batches of Chrabaszcz et al.):
    python experiments/reproduce.py --table=3,6,9 --preset=paper --imagenet_data_dir=~/imagenet64
    # every table end to end in minutes on synthetic data (CI):
    python experiments/reproduce.py --table=all --preset=smoke
    # reduced scale on the CIFAR-10 JPEG copy of this workplace:
    python experiments/reproduce.py --table=2,5,8,11,14 --preset=fast --train_subset=5000 \
        --data_dir=../shared/data/cifar10-jpeg

Each row of a table (`experiments/tables.py`) is an ordinary `train_model` or
`distill_model` run with its own directory under --runs_dir, named by what it
is (data, scale, models, method, switches, K, seed), so a run that several
tables share is trained once, and the K teachers of a pair are trained once
into `<runs_dir>/<scale>/models/<teacher>/seed-<k>` and reused by every table.
Re-running skips finished runs and resumes unfinished ones. Each table is
written to `<results_dir>/table_<N>.json`: every row's top-1 as mean ± std over
seeds (and the per-seed values and curves), the gap to the table's baseline,
provenance (git commit, preset, seeds, data sizes, epochs, machine, date) and,
for the tables with cost columns, params / FLOPs / batch-1 latency.
"""

import dataclasses
import os
import sys
import time
from pathlib import Path

from absl import app, flags

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402  (also quiets TensorFlow's C++ logs)
import tables as paper_tables  # noqa: E402

flags.DEFINE_string("table", "all", "Tables to reproduce: 'all', 'N', 'N,M' or 'N-M'.")
flags.DEFINE_enum("preset", "fast", ["paper", "fast", "smoke"], "Schedule preset.")
flags.DEFINE_integer("seeds", None, "Seeds per row (0..seeds-1); results are mean ± std. "
                     "Default: 3, or 1 for --preset=smoke.")
flags.DEFINE_string("dataset", None,
                    "Data of the CIFAR-100 tables: cifar100, image_folder, cifar10_jpeg or "
                    "synthetic (synthetic also replaces ImageNet64). Default: synthetic for "
                    "--preset=smoke, else inferred from --data_dir (image_folder if it holds "
                    "train/), else cifar100.")
flags.DEFINE_string("data_dir", None, "Data directory of the CIFAR-100 tables.")
flags.DEFINE_string("imagenet_data_dir", None,
                    "ImageNet 64x64 npz directory for the MobileNet tables (3, 6, 9, 12, 15, 18).")
flags.DEFINE_string("results_dir", "results", "Where table_<N>.json files go.")
flags.DEFINE_string("runs_dir", "runs/reproduce", "Where run directories (and teachers) go.")
flags.DEFINE_integer("epochs", None, "Epochs of every run (default: the preset's).")
flags.DEFINE_integer("batch_size", None, "Batch size (default: the preset's).")
flags.DEFINE_integer("lr_decay_every", None, "Learning-rate decay period (default: the preset's).")
flags.DEFINE_integer("train_subset", None, "Train on this many examples (class-balanced).")
flags.DEFINE_integer("test_subset", None, "Evaluate on this many test examples.")
flags.DEFINE_boolean("jit_compile", None, "XLA for the train step (pays on GPUs).")
flags.DEFINE_integer("teacher_epochs", None,
                     "Epochs of the teachers (default: the preset's). Teachers must be clearly "
                     "better than the students for KD to show; their learning rate decays "
                     "x0.1 every quarter of these epochs, the shape of the paper's schedule.")
flags.DEFINE_string("teachers_dir", None,
                    "Teachers in <teachers_dir>/<model>/seed-<k>/ or <model>-s<k>/ "
                    "(model.keras, results.json) are used as they are; missing ones are "
                    "trained there. Default: <runs_dir>/<scale>/models.")
flags.DEFINE_boolean("reuse_one_teacher", None,
                     "Use one teacher checkpoint as all K teachers (plumbing only; default: "
                     "on for --preset=smoke, off otherwise).")
flags.DEFINE_integer("latency_repeats", None, "Timed batch-1 calls per model (default: 50 "
                     "paper, 30 fast, 3 smoke).")
flags.DEFINE_boolean("dry_run", False, "List the runs each table needs; train nothing.")
flags.DEFINE_integer("jobs", 1, "Processes working in parallel, each on whole pairs (the pairs "
                     "share no run). Pays on a machine with idle cores.")
flags.DEFINE_integer("verbose", 0, "Keras fit verbosity of each run (0, 1 or 2).")
FLAGS = flags.FLAGS

# Smoke data: tiny, few classes, learnable in one epoch (kdkeras.data.synthetic).
SYNTHETIC = dict(num_train=64, num_test=32, num_classes=5, image_shape=(16, 16, 3), seed=0)
_SCALE_FLAGS = {"epochs": "e", "batch_size": "b", "lr_decay_every": "d", "train_subset": "n",
                "test_subset": "t"}
_LATENCY_REPEATS = {"paper": 50, "fast": 30, "smoke": 3}


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything a reproduction depends on besides the tables themselves."""

    preset: str = "smoke"
    seeds: tuple = (0,)
    dataset: str = "synthetic"             # the CIFAR-100 tables' data
    data_dir: str | None = None
    imagenet_data_dir: str | None = None
    results_dir: str = "results"
    runs_dir: str = "runs/reproduce"
    overrides: tuple = ()                  # (name, value) pairs: epochs, batch_size, ...
    reuse_one_teacher: bool = False
    teacher_epochs: int | None = None
    teachers_dir: str | None = None
    latency_repeats: int = 3
    dry_run: bool = False
    verbose: int = 0

    def family_dataset(self, family: str) -> tuple[str, str | None]:
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
        tag += "".join(f"-{_SCALE_FLAGS[k]}{v}" for k, v in self.overrides if k in _SCALE_FLAGS)
        tag += f"-te{self.teacher_epochs}" if self.teacher_epochs else ""
        return tag + ("-one_teacher" if self.reuse_one_teacher else "")


def options_slug(method: str, options: tuple, k: int) -> str:
    """`ours-cross_depth3-k3`, `p1-cross_depth_only2-k1`: a run's method directory."""
    parts = [method]
    for name, value in options:
        if isinstance(value, (tuple, list)):
            value = "only" + "_".join(str(v) for v in value)
        parts.append(f"{name}{value}" if not isinstance(value, str) else f"{name}_{value}")
    return "-".join(parts + [f"k{k}"])


class Reproducer:
    """Runs (or reads back) the rows of tables, sharing data, teachers and runs."""

    def __init__(self, settings: Settings):
        self.s = settings
        self._splits = {}
        self._results = {}        # workdir -> results dict of a finished run
        self._models = {}
        self._cost = {}
        self.log = []              # (label, workdir, "trained" | "skipped" | "planned" | "given")

    # --- data and configs -----------------------------------------------------
    def splits(self, family: str):
        if family not in self._splits:
            from kdkeras.data import load_dataset

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
        from kdkeras.training.config import resolve_config

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
    def _run(self, config, fn, label: str, family: str):
        """Reads back a finished run or trains/resumes it; caches by workdir."""
        from kdkeras.distill.stages import finished_results, prepare_resume

        key = config.workdir
        if key in self._results:
            return self._results[key]
        done = finished_results(config)
        if done is not None:
            self.log.append((label, key, "skipped"))
        elif self.s.dry_run:
            self.log.append((label, key, "planned"))
            return None
        else:
            import keras

            start = time.perf_counter()
            print(f"  run {label}: {key}", flush=True)
            prepare_resume(config)
            done = fn(config, self.splits(family))
            keras.backend.clear_session()
            self.log.append((label, key, "trained"))
            print(f"    top-1 {100 * done['test_accuracy']:.2f}% in "
                  f"{time.perf_counter() - start:.1f} s", flush=True)
        self._results[key] = done
        return done

    def model_dir(self, model: str, seed: int, family: str) -> Path:
        """Where `model` trained alone with `seed` lives (teachers: --teachers_dir if given)."""
        if model in TEACHER_MODELS and self.s.teachers_dir:
            root = Path(self.s.teachers_dir)
            # experiments/train.py runs collected as <model>-s<k> are found too.
            other = root / f"{model}-s{seed}"
            return other if (other / "model.keras").exists() else root / model / f"seed-{seed}"
        return self.root(family) / "models" / model / f"seed-{seed}"

    def train(self, model: str, seed: int, family: str):
        """`model` trained alone: a teacher, or a student's baseline."""
        from kdkeras.training.config import TrainConfig
        from kdkeras.training.runs import train_model

        workdir = self.model_dir(model, seed, family)
        values = dict(model=model, seed=seed)
        if model in TEACHER_MODELS and self.s.teacher_epochs:
            values.update(epochs=self.s.teacher_epochs,
                          lr_decay_every=max(1, self.s.teacher_epochs // 4))
        if model in TEACHER_MODELS and self.s.teachers_dir:
            given = _read_results(workdir)
            if given is not None:  # a teacher handed over as it is, whatever its recipe
                self._results.setdefault(str(workdir), given)
                self.log.append((f"{model} teacher, seed {seed}", str(workdir), "given"))
                return given
        cfg = self.config(TrainConfig, family, workdir, **values)
        return self._run(cfg, train_model, f"{model} alone, seed {seed}", family)

    def teacher_paths(self, model: str, k: int, family: str) -> list[str]:
        """K teacher checkpoints (seeds 0..K-1), trained first where missing."""
        seeds = [0] * k if self.s.reuse_one_teacher else list(range(k))
        for seed in sorted(set(seeds)):
            self.train(model, seed, family)
        return [str(self.model_dir(model, s, family) / "model.keras") for s in seeds]

    def distill(self, row, seed: int, family: str):
        from kdkeras.training.config import DistillRunConfig
        from kdkeras.training.runs import distill_model

        teachers = self.teacher_paths(row.teacher, row.num_teachers, family)
        workdir = (self.root(family) / "distill" / f"{row.teacher}-{row.model}"
                   / options_slug(row.method, row.options, row.num_teachers) / f"seed-{seed}")
        cfg = self.config(DistillRunConfig, family, workdir, model=row.model,
                          teacher_model=row.teacher, teachers=tuple(teachers), method=row.method,
                          distill_options=row.options, seed=seed)
        return self._run(cfg, distill_model, f"{row.label}, seed {seed}", family)

    def stages(self, row, seed: int, family: str):
        from kdkeras.distill.stages import stage_configs
        from kdkeras.training.config import DistillRunConfig
        from kdkeras.training.runs import distill_model

        teachers = self.teacher_paths(row.chain[0], row.num_teachers, family)
        workdir = (self.root(family) / "stages" / "-".join(row.chain)
                   / options_slug(row.method, row.options, row.num_teachers) / f"seed-{seed}")
        first = self.config(DistillRunConfig, family, workdir, model=row.chain[1],
                            teacher_model=row.chain[0], teachers=tuple(teachers),
                            method=row.method, distill_options=row.options, seed=seed)
        results = None
        # The same chain as `run_stages`, one stage at a time so that each is cached.
        for i, cfg in enumerate(stage_configs(row.chain, first)):
            results = self._run(cfg, distill_model, f"{row.label} [stage {i + 1}], seed {seed}",
                                family)
            if row.stage == i + 1:
                break
        return results

    # --- a table ------------------------------------------------------------------
    def model(self, name: str):
        """`name` built once at the paper's input shape (for tap counts and cost)."""
        if name not in self._models:
            from kdkeras import models

            self._models[name] = models.get(name)
        return self._models[name]

    def tap_count(self, name: str) -> int:
        from kdkeras import models

        return len(models.tap_names(self.model(name)))

    def not_applicable(self, row) -> str | None:
        """Why a row cannot run with these models' taps, or None."""
        depth = row.cross_depth
        if depth is None:
            return None
        needed = (max(depth) if isinstance(depth, (tuple, list)) else depth) + 1
        names = list(row.chain) or [row.model, row.teacher]
        have = min(self.tap_count(m) for m in names)
        if needed > have:
            return (f"cross_depth={depth} needs {needed} taps; "
                    f"{'/'.join(names)} expose {have} (kdkeras.models.tap_names)")
        return None

    def run_row(self, row, seed: int, family: str):
        if row.kind == paper_tables.TRAIN:
            return self.train(row.model, seed, family)
        if row.kind == paper_tables.DISTILL:
            return self.distill(row, seed, family)
        return self.stages(row, seed, family)

    def cost(self, names: list[str]) -> dict:
        """Params / MACs / FLOPs / batch-1 latency of each model at the paper's input shape."""
        from kdkeras.utils import cost

        out = {}
        for name in names:
            if name not in self._cost:
                model = self.model(name)
                latency = cost.measure_latency(model, batch_size=1,
                                               repeats=self.s.latency_repeats,
                                               warmup=min(5, self.s.latency_repeats))
                self._cost[name] = {
                    "params": cost.count_params(model), "macs": cost.count_macs(model),
                    "flops": cost.count_flops(model), "input_shape": list(model.input_shape[1:]),
                    "num_classes": int(model.output_shape[-1]), "latency": latency}
            out[name] = self._cost[name]
        return out

    def row_record(self, row, family: str) -> dict:
        """One row over every seed: its runs, top-1 mean ± std, or why it has none."""
        from kdkeras.reporting import aggregate

        record = {"label": row.label, "kind": row.kind, "model": row.model,
                  "teacher": row.teacher, "method": row.method, "options": dict(row.options),
                  "num_teachers": row.num_teachers, "chain": list(row.chain), "stage": row.stage,
                  "in_paper": row.in_paper}
        reason = self.not_applicable(row)
        if reason:
            print(f"  skip {row.label}: {reason}", flush=True)
            return {**record, "status": "not_applicable", "reason": reason}
        runs, status = [], None
        try:
            for seed in self.s.seeds:
                results = self.run_row(row, seed, family)
                if results is not None:
                    runs.append((seed, results))
        except Exception as err:  # noqa: BLE001 - one failed row must not lose the table
            if os.environ.get("KDKERAS_DEBUG"):
                raise
            print(f"  error in {row.label}: {type(err).__name__}: {err}", file=sys.stderr,
                  flush=True)
            status, record["reason"] = "error", f"{type(err).__name__}: {err}"
        status = status or ("ok" if len(runs) == len(self.s.seeds) else "missing")
        return {**record, "status": status,
                "top1": aggregate.top1([r for _, r in runs]),
                "best_top1": aggregate.top1([r for _, r in runs], "best_test_accuracy"),
                "runs": [run_record(seed, r) for seed, r in runs]}

    def table(self, table) -> tuple[dict, int]:
        """Runs (or reads back) every row of `table`; returns its record and failed rows."""
        from kdkeras.reporting import aggregate

        family = table.family
        rows = [self.row_record(row, family) for row in table.rows]
        errors = sum(r["status"] == "error" for r in rows)
        by_label = {r["label"]: r for r in rows}
        base = by_label[table.baseline].get("top1")
        for r in rows:
            r["delta_vs_baseline"] = aggregate.difference(r.get("top1"), base)
        record = {
            "table": table.number, "group": table.group, "group_title": paper_tables.GROUPS[table.group],
            "title": table.title, "pair": table.pair, "family": family,
            "teacher": paper_tables.PAIRS[table.pair].teacher,
            "student": paper_tables.PAIRS[table.pair].student,
            "baseline": table.baseline, "headline": table.headline,
            "headline_gap": by_label[table.headline].get("delta_vs_baseline"),
            "notes": table.notes,
            "status": "complete" if all(r["status"] in ("ok", "not_applicable") for r in rows)
                      else "partial",
            "rows": rows,
            "scale": self.scale(table, rows),
        }
        if table.cost:
            record["cost"] = self.cost_columns(table)
        return record, errors

    def cost_columns(self, table) -> dict:
        """Each model's cost, and teacher/student ratios as `kdkeras.utils.cost.cost_report`."""
        pair = paper_tables.PAIRS[table.pair]
        names = [pair.teacher] + ([pair.assistant] if table.group == "two_stage"
                                  and any(r.chain for r in table.rows) else []) + [pair.student]
        per_model = self.cost(names)
        ratios = {}
        for t, s in [(names[0], names[-1])] + (list(zip(names, names[1:])) if len(names) > 2 else []):
            ct, cs = per_model[t], per_model[s]
            ratios[f"{t}->{s}"] = {
                "compression_ratio": ct["params"] / cs["params"],
                "computation_ratio": ct["macs"] / cs["macs"],
                "params_reduction_pct": 100.0 * (1.0 - cs["params"] / ct["params"]),
                "macs_reduction_pct": 100.0 * (1.0 - cs["macs"] / ct["macs"]),
                "latency_speedup": ct["latency"]["median_ms"] / cs["latency"]["median_ms"]}
        return {"models": per_model, "ratios": ratios,
                "note": "Params/FLOPs at the paper's input shapes and class counts "
                        "(kdkeras.utils.cost; FLOPs = 2 x MACs); latency: batch 1, median of "
                        f"{self.s.latency_repeats} predict_on_batch calls on this machine."}

    def scale(self, table, rows) -> dict:
        """What the numbers of this table came from (read from the runs' provenance)."""
        from kdkeras.training.provenance import provenance

        # The students' scale (teachers may have trained longer: --teacher_epochs).
        runs = [(r["model"], run) for r in rows for run in r.get("runs", [])]
        first = next((run for m, run in runs if m not in TEACHER_MODELS),
                     runs[0][1] if runs else None)
        dataset, data_dir = self.s.family_dataset(table.family)
        data = first["data"] if first else {"dataset": dataset}
        scale = {"preset": self.s.preset, "seeds": list(self.s.seeds),
                 "scale_tag": self.s.scale_tag(table.family), "data_dir": data_dir,
                 "overrides": dict(self.s.overrides),
                 "teachers": ("one checkpoint used as all K teachers (smoke plumbing)"
                              if self.s.reuse_one_teacher else "K teachers of seeds 0..K-1"),
                 "teacher_epochs": self.s.teacher_epochs, "teachers_dir": self.s.teachers_dir,
                 **data,
                 "epochs": first["epochs"] if first else None,
                 "batch_size": first["batch_size"] if first else None}
        return {**scale, "provenance": provenance(**scale)}


TEACHER_MODELS = frozenset(p.teacher for p in paper_tables.PAIRS.values())


def _read_results(workdir: Path):
    import json

    path = Path(workdir) / "results.json"
    if not (path.exists() and (Path(workdir) / "model.keras").exists()):
        return None
    return json.loads(path.read_text())


def run_record(seed: int, results: dict) -> dict:
    """The part of a run's results.json a table file keeps."""
    from kdkeras.reporting.aggregate import compact_history

    prov = results.get("provenance", {})
    config = results.get("config", {})
    return {"seed": seed, "workdir": config.get("workdir"),
            "test_accuracy": results["test_accuracy"],
            "best_test_accuracy": results.get("best_test_accuracy"),
            "epochs": results.get("epochs"), "batch_size": config.get("batch_size"),
            "teachers": results.get("teachers"),
            "seconds": round(sum(h.get("seconds", 0.0) for h in results.get("history", [])), 1),
            "git_commit": prov.get("git_commit"), "date": prov.get("date"),
            "data": {k: prov.get(k) for k in ("dataset", "dataset_source", "num_train",
                                               "num_test", "num_classes")},
            "history": compact_history(results.get("history", []))}


def settings_from_flags() -> Settings:
    preset = FLAGS.preset
    no_data = not FLAGS.data_dir and not FLAGS.imagenet_data_dir
    dataset = FLAGS.dataset or ("synthetic" if preset == "smoke" and no_data
                                else common.infer_dataset(None, FLAGS.data_dir))
    seeds = FLAGS.seeds if FLAGS.seeds is not None else (1 if preset == "smoke" else 3)
    if seeds < 1:
        raise ValueError(f"--seeds must be >= 1. Received: --seeds={seeds}.")
    overrides = tuple((k, getattr(FLAGS, k)) for k in (
        "epochs", "batch_size", "lr_decay_every", "train_subset", "test_subset", "jit_compile")
        if getattr(FLAGS, k) is not None)
    reuse = FLAGS.reuse_one_teacher if FLAGS.reuse_one_teacher is not None else preset == "smoke"
    return Settings(preset=preset, seeds=tuple(range(seeds)), dataset=dataset,
                    data_dir=FLAGS.data_dir, imagenet_data_dir=FLAGS.imagenet_data_dir,
                    results_dir=FLAGS.results_dir, runs_dir=FLAGS.runs_dir, overrides=overrides,
                    reuse_one_teacher=reuse, teacher_epochs=FLAGS.teacher_epochs,
                    teachers_dir=FLAGS.teachers_dir,
                    latency_repeats=FLAGS.latency_repeats or _LATENCY_REPEATS[preset],
                    dry_run=FLAGS.dry_run, verbose=FLAGS.verbose)


def reproduce(numbers, settings: Settings) -> int:
    """Reproduces the tables `numbers`; writes their JSON; returns the number of failed rows."""
    from kdkeras.data import DataError
    from kdkeras.training.provenance import write_json_atomic

    rep = Reproducer(settings)
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
        write_json_atomic(path, record)
        print(f"  -> {path} ({record['status']}, {time.perf_counter() - start:.1f} s)", flush=True)
    if settings.dry_run:
        runs = {key: (label, state) for label, key, state in rep.log}
        for key, (label, state) in runs.items():
            print(f"{state:8s} {key}  ({label})")
        print(f"{sum(s == 'planned' for _, s in runs.values())} runs to train, "
              f"{sum(s == 'skipped' for _, s in runs.values())} finished.")
    return failed


def split_by_pair(numbers, jobs: int) -> list[list[int]]:
    """The tables in at most `jobs` groups of whole pairs, balanced by their run counts."""
    by_pair = {}
    for n in numbers:
        by_pair.setdefault(paper_tables.get(n).pair, []).append(n)
    # ResNet-50/18 runs cost several times the others'.
    weight = {p: sum(len(paper_tables.get(n).rows) for n in ns) * (3 if p == "resnet50" else 1)
              for p, ns in by_pair.items()}
    groups = [[] for _ in range(min(jobs, len(by_pair)))]
    loads = [0] * len(groups)
    for pair in sorted(by_pair, key=weight.get, reverse=True):
        i = loads.index(min(loads))
        groups[i] += by_pair[pair]
        loads[i] += weight[pair]
    return [sorted(g) for g in groups]


def run_in_parallel(groups) -> int:
    """Runs this script once per group of tables, in parallel; returns how many failed."""
    import subprocess

    passed = [f"--{f.name}={f.value}" if not isinstance(f.value, bool)
              else f"--{'' if f.value else 'no'}{f.name}"
              for f in FLAGS.get_key_flags_for_module(sys.modules[__name__])
              if f.present and f.name not in ("table", "jobs")]
    procs = [subprocess.Popen([sys.executable, __file__, f"--table={','.join(map(str, g))}",
                               "--jobs=1", *passed]) for g in groups]
    return sum(p.wait() != 0 for p in procs)


def main(argv):
    del argv

    def run():
        numbers = paper_tables.parse_selection(FLAGS.table)
        settings = settings_from_flags()
        groups = split_by_pair(numbers, FLAGS.jobs) if FLAGS.jobs > 1 else [numbers]
        if len(groups) > 1 and not settings.dry_run:
            print(f"{len(groups)} processes: tables {groups}", flush=True)
            failed = run_in_parallel(groups)
        else:
            failed = reproduce(numbers, settings)
        if failed:
            print(f"error: {failed} table(s) or row(s) failed; see the messages above.",
                  file=sys.stderr)
            sys.exit(1)

    common.run_cli(run)


if __name__ == "__main__":
    app.run(main)
