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

The tables are `kdkeras.reproduce.tables`; the engine (run directories, shared
teachers, skip and resume, the table files) is `kdkeras.reproduce.engine`. This
script maps its flags onto `kdkeras.reproduce.Settings` and calls `reproduce`.
"""

import sys
from pathlib import Path

from absl import app, flags

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402  (also quiets TensorFlow's C++ logs)

flags.DEFINE_string("table", "all", "Tables to reproduce: 'all', 'N', 'N,M' or 'N-M'.")
common.define_schedule_flags()  # --preset, --epochs, --batch_size, ..., --jit_compile
flags.adopt_module_key_flags(common)  # so that --jobs passes them on
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
flags.DEFINE_string("results_dir", None, "Where table_<N>.json files go (default: "
                    "<runs_dir>/tables; pass e.g. --results_dir=results/... to update the "
                    "committed results). A file with finished rows that this run did not "
                    "finish is never replaced.")
flags.DEFINE_string("runs_dir", "runs/reproduce", "Where run directories (and teachers) go.")
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
flags.DEFINE_multi_string("row", [], "Train only the row with this label (repeatable), e.g. "
                          "--row='FSP, 2 teachers (P3)'; the tables' other rows are read back "
                          "where finished and reported missing otherwise.")
flags.DEFINE_integer("jobs", 1, "Processes working in parallel, each on whole pairs (the pairs "
                     "share no run). Pays on a machine with idle cores.")
flags.DEFINE_integer("verbose", 0, "Keras fit verbosity of each run (0, 1 or 2).")
FLAGS = flags.FLAGS


def results_dir() -> str:
    """--results_dir, else a folder of the run: the tracked results/ only when asked."""
    return FLAGS.results_dir or str(Path(FLAGS.runs_dir) / "tables")


def parse_tables(text: str) -> list[int]:
    """--table as table numbers, or a ValueError naming the flag (before any run)."""
    from kdkeras.reproduce import tables

    valid = f"'all', a number, 'N,M' or 'N-M' with N <= M, tables 1..{max(tables.TABLES)}"
    parts = [p.strip() for p in str(text).split(",")]
    for part in parts:
        bounds = part.split("-") if part.lower() != "all" else []
        if part.lower() != "all" and (not 1 <= len(bounds) <= 2
                                      or not all(b.strip().isdigit() for b in bounds)):
            raise ValueError(f"--table must be {valid}. Received: --table={text!r}.")
        if len(bounds) == 2 and int(bounds[0]) > int(bounds[1]):
            raise ValueError(f"--table={text!r} is an empty range ({part}: {bounds[0]} > "
                             f"{bounds[1]}); write {bounds[1]}-{bounds[0]}.")
    try:
        numbers = tables.parse_selection(text)
    except ValueError as err:
        raise ValueError(f"--table={text!r}: {err}") from None
    if not numbers:
        raise ValueError(f"--table={text!r} selects no table; it must be {valid}.")
    return numbers


def check_flags(settings) -> None:
    """Everything a run would refuse later, refused now (before any training)."""
    from kdkeras.training.config import TrainConfig, resolve_config
    from kdkeras.training.preflight import check_writable_dir

    overrides = dict(settings.overrides)
    if FLAGS.teacher_epochs is not None:
        resolve_config(TrainConfig, settings.preset, settings.dataset, epochs=FLAGS.teacher_epochs)
    resolve_config(TrainConfig, settings.preset, settings.dataset, **overrides)
    if not settings.dry_run:
        check_writable_dir(settings.results_dir, "--results_dir")
        check_writable_dir(settings.runs_dir, "--runs_dir")


def settings_from_flags():
    from kdkeras.reproduce import Settings

    no_data = not FLAGS.data_dir and not FLAGS.imagenet_data_dir
    dataset = FLAGS.dataset or ("synthetic" if FLAGS.preset == "smoke" and no_data
                                else common.infer_dataset(None, FLAGS.data_dir))
    overrides = {k: getattr(FLAGS, k) for k in ("epochs", "batch_size", "lr_decay_every",
                                                "train_subset", "test_subset", "jit_compile")}
    return Settings.for_preset(
        FLAGS.preset, dataset=dataset, seeds=FLAGS.seeds, overrides=overrides,
        reuse_one_teacher=FLAGS.reuse_one_teacher, latency_repeats=FLAGS.latency_repeats,
        data_dir=FLAGS.data_dir, imagenet_data_dir=FLAGS.imagenet_data_dir,
        results_dir=results_dir(), runs_dir=FLAGS.runs_dir,
        teacher_epochs=FLAGS.teacher_epochs, teachers_dir=FLAGS.teachers_dir,
        dry_run=FLAGS.dry_run, rows=tuple(FLAGS.row), verbose=FLAGS.verbose)


def run_in_parallel(groups) -> int:
    """Runs this script once per group of tables, in parallel; returns how many failed."""
    import signal
    import subprocess

    passed = []
    for f in FLAGS.get_key_flags_for_module(sys.modules[__name__]):
        if not f.present or f.name in ("table", "jobs"):
            continue
        if isinstance(f.value, bool):
            passed.append(f"--{'' if f.value else 'no'}{f.name}")
        elif isinstance(f.value, list):  # a repeated flag (--row) is passed on repeated
            passed += [f"--{f.name}={v}" for v in f.value]
        else:
            passed.append(f"--{f.name}={f.value}")
    procs = [subprocess.Popen([sys.executable, __file__, f"--table={','.join(map(str, g))}",
                               "--jobs=1", *passed]) for g in groups]

    # A stop asked of this process (SIGTERM, e.g. from a scheduler) goes to every child,
    # which checkpoints and stops as a single-process run does; Ctrl-C reaches them already.
    def forward(signum, frame):
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        return sum(p.wait() != 0 for p in procs)
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv):
    del argv
    common.quiet_logs()

    def run():
        from kdkeras.reproduce import reproduce, split_by_pair

        numbers = parse_tables(FLAGS.table)
        settings = settings_from_flags()
        check_flags(settings)
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
