"""One reproduce table of the ResNet-32 → ResNet-8 pair, every row at once, on the table engine.

Runs on the GPU machine (JAX, no TensorFlow) through `run_on_gpu.sh`, or on any
machine with the JAX backend. The paper's schedule (200 epochs, batch 128, lr
1e-2 ×0.1 every 50) on the full CIFAR-10 (JPEG) with the committed teachers:

    SCRIPT=scripts/gpu/run_table.py scripts/gpu/run_on_gpu.sh --table=14 \
        --teachers=results/cifar10-jpeg/teachers-full/resnet32-s0/model.keras,\
results/cifar10-jpeg/teachers-full/resnet32-s1/model.keras,\
results/cifar10-jpeg/teachers-full/resnet32-s2/model.keras

or directly:

    KERAS_BACKEND=jax python scripts/gpu/run_table.py --data=.carry/data/cifar10-jpeg.tar.gz \
        --root=/tmp/table-14 --table=14 --teachers=...

Every row of the table whose student is `--student_model` (the student alone
and each distillation, with its own method, options and K) is one row of one
`TableEngine`: one compiled program per epoch steps them all on the same
batches, each teacher's forward once per batch. `--train_teachers=K` first
trains K teachers together (one row per seed, each with its own data order) for
`--teacher_epochs`. After every epoch the engine's state is saved in
`<root>/engine-checkpoint.npz`; a rerun with the same flags continues from it
(run_on_gpu.sh packs and unpacks `<root>` between device calls). At the end
each row's `student.keras` and `results.json` are in `<root>/runs/<row>/` and
`<root>/summary.json` holds the accuracies, the timing (compile seconds, seconds
per epoch, images per second, the projected wall time of `--epochs`) and the
provenance.
"""

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")

from absl import app, flags  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # run as a file, or by runpy
from gpu_flags import define_data_flags, table_runs  # noqa: E402

FLAGS = flags.FLAGS
define_data_flags(default_root="runs/table-engine")
flags.DEFINE_integer("table", 14, "The reproduce table (kdkeras.reproduce.tables).")
flags.DEFINE_list("rows", None, "Only these row slugs (e.g. student,fsp-init0.125-k1); default: all.")
flags.DEFINE_string("student_model", "resnet8", "The table's student architecture.")
flags.DEFINE_string("teacher_model", "resnet32", "The teachers' architecture.")
flags.DEFINE_list("teachers", None, "Saved .keras teachers (teacher k = the k-th path).")
flags.DEFINE_integer("train_teachers", 0, "Instead of --teachers: train K teachers together.")
flags.DEFINE_integer("teacher_epochs", None, "Epochs of the teachers (default: --epochs).")
flags.DEFINE_integer("seed", 0, "The students' seed (initial weights and data order).")
flags.DEFINE_integer("epochs", 200, "Epochs (the paper: 200).")
flags.DEFINE_integer("batch_size", 128, "Batch size (the paper: 128).")
flags.DEFINE_float("learning_rate", 1e-2, "Initial learning rate (the paper: 1e-2).")
flags.DEFINE_integer("lr_decay_every", 50, "×0.1 every this many epochs (the paper: 50).")
flags.DEFINE_integer("train_subset", None, "Train on this many class-balanced images.")
flags.DEFINE_integer("test_subset", None, "Test on the first this many images.")


def _save_checkpoint(path, engine, epoch, history):
    import json

    import jax
    import numpy as np

    leaves = jax.tree_util.tree_leaves(engine.state)
    tmp = path.with_name(f"tmp-{path.name}")
    with open(tmp, "wb") as f:
        np.savez(f, meta=np.asarray(json.dumps({"epoch": epoch, "history": history,
                                                "rows": [r.name for r in engine.rows]})),
                 **{f"leaf{i:05d}": np.asarray(v) for i, v in enumerate(leaves)})
    os.replace(tmp, path)


def _restore_checkpoint(path, engine):
    """(epochs done, history) from `path` if it holds this engine's rows, else (0, None)."""
    import json

    import jax
    import numpy as np

    if not path.exists():
        return 0, None
    with np.load(path) as f:
        meta = json.loads(str(f["meta"]))
        leaves, treedef = jax.tree_util.tree_flatten(engine.state)
        if meta["rows"] != [r.name for r in engine.rows] or len(f.files) - 1 != len(leaves):
            raise app.UsageError(f"{path} holds another table's state; use another --root.")
        saved = [f[f"leaf{i:05d}"] for i in range(len(leaves))]
    engine.state = jax.tree_util.tree_unflatten(
        treedef, [jax.numpy.asarray(s, dtype=v.dtype) for s, v in zip(saved, leaves)])
    return meta["epoch"], meta["history"]


def _teachers(config, data, root):
    """The K teachers: loaded from --teachers, or trained together (or loaded if trained before)."""
    import dataclasses

    from kdkeras.training.runs import load_teacher
    from kdkeras.training.table_engine import TableEngine
    from kdkeras.training.table_rows import teacher_rows
    from kdkeras.training.trainer import save_model_atomic

    if FLAGS.teachers:
        return [load_teacher(p, expected_model=FLAGS.teacher_model,
                             num_classes=data.num_classes) for p in FLAGS.teachers], {}
    paths = [root / "teachers" / f"teacher-{k}" / "model.keras"
             for k in range(FLAGS.train_teachers)]
    if all(p.exists() for p in paths):
        return [load_teacher(p, expected_model=FLAGS.teacher_model) for p in paths], {}
    tconfig = dataclasses.replace(config, model=FLAGS.teacher_model,
                                  epochs=FLAGS.teacher_epochs or FLAGS.epochs)
    rows = teacher_rows(tconfig, range(FLAGS.train_teachers), num_classes=data.num_classes,
                        input_shape=data.image_shape, input_normalization=(data.mean, data.std))
    engine = _engine(rows, data, tconfig)
    history = engine.fit(tconfig.epochs)
    engine.write_back()
    for row, path in zip(rows, paths):
        path.parent.mkdir(parents=True, exist_ok=True)
        save_model_atomic(row.distiller.student, path)
    timing = {"teacher_epochs": tconfig.epochs,
              "teacher_epoch_seconds": [h["seconds"] for h in history[rows[0].name]],
              "teacher_test_accuracy": [h[-1]["val_accuracy"] for h in history.values()]}
    return [row.distiller.student for row in rows], timing


def _engine(rows, data, config):
    from kdkeras.training.table_engine import TableEngine

    x_test, y_test = data.x_test, data.y_test
    if FLAGS.test_subset:
        x_test, y_test = x_test[:FLAGS.test_subset], y_test[:FLAGS.test_subset]
    return TableEngine(rows, data.x_train, data.y_train, batch_size=config.batch_size,
                       learning_rate_at=config.learning_rate_at,
                       stats=None,   # the models normalise their own pixels (input_normalization)
                       test_images=x_test, test_labels=y_test)


def main(argv):
    del argv
    import dataclasses
    import time
    from pathlib import Path

    from kdkeras.data.numpy_data import balanced_subset, load_image_arrays
    from kdkeras.training.config import DistillRunConfig, resolve_config
    from kdkeras.training.provenance import accelerator, provenance, write_json_atomic
    from kdkeras.training.table_rows import build_rows, write_row_results

    if bool(FLAGS.teachers) == bool(FLAGS.train_teachers):
        raise app.UsageError("Pass either --teachers=PATHS or --train_teachers=K.")
    started = time.perf_counter()
    root = Path(FLAGS.root)
    root.mkdir(parents=True, exist_ok=True)
    data = load_image_arrays(FLAGS.data, name=FLAGS.name, cache=FLAGS.cache)
    if FLAGS.train_subset:
        x, y = balanced_subset(data.x_train, data.y_train, FLAGS.train_subset)
        data = dataclasses.replace(data, x_train=x, y_train=y)
    config = resolve_config(DistillRunConfig, "paper", dataset=FLAGS.name,
                            model=FLAGS.student_model, teacher_model=FLAGS.teacher_model,
                            seed=FLAGS.seed, epochs=FLAGS.epochs, batch_size=FLAGS.batch_size,
                            learning_rate=FLAGS.learning_rate,
                            lr_decay_every=FLAGS.lr_decay_every, workdir=str(root))
    teachers, teacher_timing = _teachers(config, data, root)
    runs = table_runs([FLAGS.table], FLAGS.student_model, FLAGS.rows)
    rows = build_rows(runs, teachers, config, num_classes=data.num_classes,
                      input_shape=data.image_shape, input_normalization=(data.mean, data.std))
    engine = _engine(rows, data, config)
    checkpoint = root / "engine-checkpoint.npz"
    done, history = _restore_checkpoint(checkpoint, engine)
    if done:
        print(f"Resuming table {FLAGS.table} after epoch {done}/{FLAGS.epochs}.", flush=True)
    history = history or {row.name: [] for row in rows}

    def keep(epoch, new):
        for name, entries in new.items():
            history[name].append(entries[-1])
        _save_checkpoint(checkpoint, engine, epoch + 1, history)

    engine.fit(FLAGS.epochs, initial_epoch=done, on_epoch_end=keep)
    engine.write_back()
    scale = {"dataset": data.name, "dataset_source": data.source,
             "num_train": len(data.y_train), "num_test": FLAGS.test_subset or data.num_test,
             "num_classes": data.num_classes}
    summary = write_row_results(engine, history, root / "runs", config, scale=scale,
                                extra={"table": FLAGS.table, "teachers": FLAGS.teachers or []})
    if FLAGS.train_teachers:
        summary["teachers"] = [{"row": f"teacher-{k}", "path": str(
            root / "teachers" / f"teacher-{k}" / "model.keras")}
            for k in range(FLAGS.train_teachers)]
    epoch_seconds = [h["seconds"] for h in history[rows[0].name]]   # compilation excluded
    per_epoch = sum(epoch_seconds) / len(epoch_seconds)
    steps = engine.batches.steps_per_epoch
    summary["timing"] = {
        "training_compiles": sum(1 for k in engine.compile_seconds if k[0] == "train"),
        "loop": engine.loop,
        "compile_seconds": {str(k): v for k, v in engine.compile_seconds.items()},
        "epoch_seconds": epoch_seconds,
        "seconds_per_epoch": per_epoch,
        "student_images_per_second": len(rows) * steps * config.batch_size / per_epoch,
        "teacher_forwards_per_batch": engine.teacher_forwards_per_batch(),
        "projected_seconds_for_epochs": per_epoch * FLAGS.epochs + sum(
            engine.compile_seconds.values()),
        "wall_seconds_this_call": time.perf_counter() - started,
        **teacher_timing,
    }
    summary["table"] = FLAGS.table
    summary["accelerator"] = accelerator()
    summary["provenance"] = provenance(preset="paper" if (FLAGS.epochs, FLAGS.batch_size,
                                                          FLAGS.lr_decay_every) == (200, 128, 50)
                                       else "custom", epochs=FLAGS.epochs, **scale)
    write_json_atomic(root / "summary.json", summary)
    for row in summary["rows"]:
        print(row, flush=True)
    print(summary["timing"], flush=True)


if __name__ == "__main__":
    app.run(main)
