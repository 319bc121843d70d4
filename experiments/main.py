"""The main job: the paper's method against the student alone, with the shipped teachers.

    make run            # = python experiments/main.py [--data_dir=../shared/data/cifar10-jpeg]

Distils a ResNet-8 from the three ResNet-32 teachers committed in
results/cifar10-jpeg/teachers-full (trained on all 50,000 CIFAR-10 (JPEG)
training images, 79.2-79.6% top-1) with the paper's full method: P1 (cross-layer
Gram, up to three taps apart) + P2 (KL) + P3 (the K=3 teachers) + the β step.
It trains the same student alone (and, with --baseline=hinton, with Hinton KD
from one teacher), then prints the comparison, and saves the distilled student
(<workdir>/ours/student.keras), a plot of the test accuracy per epoch
(<workdir>/curves.png) and <workdir>/summary.{md,json}. No teacher is trained.

Scale: preset `demo` (kdkeras.training.config): 10,000 class-balanced training
images, the full 10,000-image test set, 10 epochs, lr 1e-2 ×0.1 every 5, batch
128, about ten minutes on 2 CPU cores. `--preset=fast` (20 epochs) and
`--preset=paper` (200 epochs) run on all the training images; a flag given
(`--epochs`, `--train_subset`, ...) overrides the preset's value, and the run's
config.json and summary.json record the schedule that ran.

Data: the CIFAR-10 JPEG image folder of --data_dir (`make run` passes
../shared/data/cifar10-jpeg where it exists); without one, CIFAR-10 through
tensorflow-datasets (downloaded once: the only network use), the teachers'
dataset.
"""

import json
import sys
import time
from pathlib import Path

from absl import app, flags

import common

REPO = Path(__file__).resolve().parents[1]
SHIPPED_TEACHERS = [str(REPO / "results" / "cifar10-jpeg" / "teachers-full" / f"resnet32-s{k}")
                    for k in range(3)]

common.define_schedule_flags(default_preset="demo", presets=common.PRESETS)
flags.DEFINE_string("data_dir", None, "CIFAR-10 image folder (<split>/<class>/<image>); "
                    "default: CIFAR-10 through tensorflow-datasets.")
flags.DEFINE_enum("dataset", None, ["cifar10_jpeg", "cifar10"],
                  "Default: cifar10_jpeg with --data_dir, else cifar10 (tensorflow-datasets).")
flags.DEFINE_string("workdir", "runs/main", "Where the runs, the student and the plot go.")
flags.DEFINE_list("teachers", SHIPPED_TEACHERS,
                  "Teacher checkpoints (.keras files or run directories); default: the three "
                  "full-data ResNet-32s in results/cifar10-jpeg/teachers-full.")
flags.DEFINE_string("teacher_model", "resnet32", "The teachers' architecture.")
flags.DEFINE_string("student_model", "resnet8", "The student's architecture.")
flags.DEFINE_string("baseline", "none", "Also run this baseline method with the first teacher "
                    "(kdkeras.distill.METHODS, e.g. hinton); none: only the student alone and "
                    "the full method (what fits in ten minutes on 2 CPU cores).")
flags.DEFINE_integer("seed", 0, "Seed of the student runs.")
flags.DEFINE_integer("verbose", 2, "Keras fit verbosity (0, 1 or 2).")
flags.DEFINE_boolean("dry_run", False, "Print the runs and their schedule; train nothing.")
flags.adopt_module_key_flags(common)  # --help lists the shared flags too
FLAGS = flags.FLAGS


def _dataset():
    if FLAGS.dataset:
        return FLAGS.dataset
    return "cifar10_jpeg" if FLAGS.data_dir else "cifar10"


def _shipped_results(path: str) -> dict:
    """The results.json beside a teacher checkpoint (its recorded accuracy and scale)."""
    folder = Path(path) if Path(path).is_dir() else Path(path).parent
    found = folder / "results.json"
    return json.loads(found.read_text()) if found.exists() else {}


def _runs(baseline: str, teachers: list) -> list:
    """(row name, method, teachers) of each student run, the full method last."""
    runs = [(f"student alone ({FLAGS.student_model})", "student", [])]
    if baseline != "none":
        runs.append((f"{baseline} (1 teacher)", baseline, teachers[:1]))
    runs.append((f"ours: P1+P2+P3+β, K={len(teachers)}", "ours", teachers))
    return runs


def describe_schedule(cfg, given) -> str:
    """One line: the preset, the flags that overrode it, and the schedule that runs."""
    def size(n, what):
        return f"{n} {what} images" if n else f"all {what} images"

    return (f"Schedule: preset {FLAGS.preset!r}"
            + (f" with {', '.join('--' + n for n in given)} given" if given else "")
            + f": {size(cfg.train_subset, 'training')}, {size(cfg.test_subset, 'test')}, "
            f"{cfg.epochs} epochs, lr {cfg.learning_rate:g} ×{cfg.lr_decay_factor:g} every "
            f"{cfg.lr_decay_every}, batch {cfg.batch_size}.")


def main(argv):
    del argv
    common.quiet_logs()
    from kdkeras.distill import method_names
    from kdkeras.training.config import DistillRunConfig, resolve_config
    from kdkeras.training.report import comparison_table, plot_curves
    from kdkeras.training.runs import distill_model, load_data

    def run():
        if FLAGS.baseline not in (*method_names(), "none"):
            raise ValueError(f"--baseline must be one of {', '.join(method_names())} or none. "
                             f"Received: --baseline={FLAGS.baseline}.")
        started = time.time()
        dataset, root = _dataset(), Path(FLAGS.workdir)
        schedule = dict(epochs=FLAGS.epochs, batch_size=FLAGS.batch_size,
                        lr_decay_every=FLAGS.lr_decay_every, train_subset=FLAGS.train_subset,
                        test_subset=FLAGS.test_subset, jit_compile=FLAGS.jit_compile)
        shared = dict(data_dir=FLAGS.data_dir, teacher_model=FLAGS.teacher_model,
                      model=FLAGS.student_model, seed=FLAGS.seed, verbose=FLAGS.verbose,
                      overwrite=True, **schedule)
        runs = _runs(FLAGS.baseline, list(FLAGS.teachers))
        configs = [resolve_config(DistillRunConfig, FLAGS.preset, dataset, method=method,
                                  teachers=tuple(paths), workdir=str(root / method), **shared)
                   for _, method, paths in runs]
        cfg = configs[0]
        given = [n for n, v in schedule.items() if v is not None]
        print(describe_schedule(cfg, given))
        for (name, method, paths), config in zip(runs, configs):
            print(f"  {name}: {config.workdir}" + (f", teachers {', '.join(paths)}" if paths else ""))
        if FLAGS.dry_run:
            return
        splits = load_data(cfg)
        n_train = min(cfg.train_subset or splits.num_train, splits.num_train)
        n_test = min(cfg.test_subset or splits.num_test, splits.num_test)
        print(f"Data: {splits.name} ({splits.source}), {splits.num_classes} classes: "
              f"{n_train} of {splits.num_train} training images, {n_test} test images.",
              flush=True)
        rows = []
        for k, path in enumerate(FLAGS.teachers):
            recorded = _shipped_results(path)
            if recorded:
                rows.append((f"teacher {k} ({recorded.get('model', FLAGS.teacher_model)}, "
                             "as recorded)", recorded))
        for (name, method, paths), config in zip(runs, configs):
            print(f"\n== {name}", flush=True)
            rows.append((name, distill_model(config, splits)))
        table = comparison_table(rows)
        alone, ours = rows[-len(runs)][1], rows[-1][1]
        gain = 100 * (ours["test_accuracy"] - alone["test_accuracy"])
        minutes = (time.time() - started) / 60
        print("\n" + table + f"\n\nDistilled minus alone: {gain:+.2f} points "
              f"(seed {FLAGS.seed}, {minutes:.1f} min).")
        plot = plot_curves(rows[-len(runs):], root / "curves.png")
        (root / "summary.md").write_text(table + "\n")
        (root / "summary.json").write_text(json.dumps({
            "schedule": {"preset": FLAGS.preset, "flags_given": given, "dataset": splits.name,
                         "train_images": n_train, "test_images": n_test,
                         "epochs": cfg.epochs, "lr_decay_every": cfg.lr_decay_every,
                         "batch_size": cfg.batch_size, "seed": FLAGS.seed},
            "runs": {name: {"test_accuracy": r["test_accuracy"],
                            "run": r.get("config", {}).get("workdir")} for name, r in rows},
            "gain_points": gain, "minutes": minutes}, indent=2))
        print(f"Student saved: {root / 'ours' / 'student.keras'}; curves: {plot}")

    common.run_cli(run)


if __name__ == "__main__":
    sys.exit(app.run(main))
