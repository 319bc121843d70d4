"""The main job: 3 teachers -> a student distilled with the paper's full method.

    make run            # = python experiments/main.py [--data_dir=...]

Trains K=3 teachers (different seeds), distils a student with P1 (cross-three
Gram) + P2 (KL) + P3 (K teachers) and the β step, trains the same student alone
as the baseline, prints the comparison, and saves the student and a plot of
the curves under --workdir. The default scale (a few thousand images, a few
epochs) finishes in about 10 minutes on 2 CPU cores; every value is a flag,
and --preset=paper gives the paper's schedule on the full data.

Data: CIFAR-100 through tensorflow-datasets by default (needs internet once);
--data_dir=PATH for an image folder (<split>/<class>/<image>) or a local copy.
"""

import json
from pathlib import Path

from absl import app, flags

import common

flags.DEFINE_string("data_dir", None, "Image folder or local dataset copy (default: tfds CIFAR-100).")
flags.DEFINE_string("dataset", None, "Dataset name (default: inferred from --data_dir).")
flags.DEFINE_string("workdir", "runs/main", "Where the runs, the student and the plot go.")
flags.DEFINE_string("teacher_model", "resnet32", "Teacher architecture.")
flags.DEFINE_string("student_model", "resnet8", "Student architecture.")
flags.DEFINE_integer("num_teachers", 3, "K, the number of teachers (P3).")
flags.DEFINE_enum("preset", "fast", ["paper", "fast", "smoke"], "Schedule preset.")
# Sized for about 10 minutes on 2 CPU cores: 3 ResNet-32 teachers × 6 epochs on
# 5,000 images took ~20 s an epoch on an idle 2-core machine here.
flags.DEFINE_integer("teacher_epochs", 6, "Teacher epochs (0 = the preset's).")
flags.DEFINE_integer("student_epochs", 8, "Student epochs (0 = the preset's).")
flags.DEFINE_integer("lr_decay_every", 5, "Learning-rate decay period (0 = the preset's).")
flags.DEFINE_integer("train_subset", 5000, "Training examples (0 = all).")
flags.DEFINE_integer("test_subset", 2000, "Test examples (0 = all).")
flags.DEFINE_integer("seed", 0, "Seed of the student runs.")
FLAGS = flags.FLAGS


def _opt(value):
    return value or None


def main(argv):
    del argv
    from kdkeras.training.config import DistillRunConfig, TrainConfig, resolve_config
    from kdkeras.training.report import comparison_table, plot_curves
    from kdkeras.training.runs import _load_data, distill_model, train_model

    def run():
        dataset = common.infer_dataset(FLAGS.dataset, FLAGS.data_dir)
        root = Path(FLAGS.workdir)
        common_values = dict(data_dir=FLAGS.data_dir, train_subset=_opt(FLAGS.train_subset),
                             test_subset=_opt(FLAGS.test_subset),
                             lr_decay_every=_opt(FLAGS.lr_decay_every), resume=True)
        probe = resolve_config(TrainConfig, FLAGS.preset, dataset, **common_values)
        splits = _load_data(probe)
        print(f"Data: {splits.name} ({splits.source}), {splits.num_classes} classes; "
              f"training on {min(probe.train_subset or splits.num_train, splits.num_train)} "
              f"of {splits.num_train} images.", flush=True)
        teacher_runs = []
        for k in range(FLAGS.num_teachers):
            cfg = resolve_config(TrainConfig, FLAGS.preset, dataset, model=FLAGS.teacher_model,
                                 seed=k, epochs=_opt(FLAGS.teacher_epochs),
                                 workdir=str(root / "teachers" / f"teacher-{k}"), **common_values)
            print(f"\n== Teacher {k + 1}/{FLAGS.num_teachers}: {cfg.model}, seed {k}", flush=True)
            teacher_runs.append(train_model(cfg, splits))
        teacher_paths = tuple(str(root / "teachers" / f"teacher-{k}" / "model.keras")
                              for k in range(FLAGS.num_teachers))
        students = {}
        for method in ("student", "ours"):
            cfg = resolve_config(DistillRunConfig, FLAGS.preset, dataset, model=FLAGS.student_model,
                                 teacher_model=FLAGS.teacher_model,
                                 teachers=teacher_paths if method != "student" else (),
                                 method=method, seed=FLAGS.seed,
                                 epochs=_opt(FLAGS.student_epochs),
                                 workdir=str(root / method), **common_values)
            print(f"\n== Student {cfg.model}: method {method!r}", flush=True)
            students[method] = distill_model(cfg, splits)
        rows = [(f"teacher {k} ({r['model']})", r) for k, r in enumerate(teacher_runs)]
        rows += [(f"student alone ({students['student']['model']})", students["student"]),
                 (f"distilled: P1+P2+P3+β, K={FLAGS.num_teachers}", students["ours"])]
        table = comparison_table(rows)
        print("\n" + table)
        plot = plot_curves(rows, root / "curves.png")
        (root / "summary.md").write_text(table + "\n")
        (root / "summary.json").write_text(json.dumps(
            {name: {"test_accuracy": r["test_accuracy"], "run": r["config"]["workdir"]}
             for name, r in rows}, indent=2))
        print(f"\nStudent saved: {root / 'ours' / 'student.keras'}; curves: {plot}")

    common.run_cli(run)


if __name__ == "__main__":
    app.run(main)
