"""Exports a trained student as a SavedModel and a TFLite model, checked on real test images.

    python experiments/export.py --model_path=runs/r32-r8-ours/student.keras --int8

Writes, next to the model unless --out_dir says otherwise (<run dir>/export/):
saved_model/ (endpoint `serve`), student.tflite (float32), student_int8.tflite
(dynamic-range int8, with --int8) and export_report.json: for each format its
size, top-1 agreement and max |Δlogit| against the Keras model on
--check_images test images, its accuracy on them, and its median batch-1
latency with the device named. How to load each file in a fresh process:
docs/deploy.md.

The test images come from the run's own dataset (its config.json beside the
model), else from --dataset/--data_dir (default: the CIFAR-10 JPEG copy).
"""

import json
import os
from pathlib import Path

from absl import app, flags
from absl import logging as absl_logging

import common

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

flags.DEFINE_string("model_path", None, "The student's .keras file, or its run directory.")
flags.DEFINE_string("out_dir", None, "Where the exports go (default: <model folder>/export).")
flags.DEFINE_string("dataset", None, "Dataset of the check images (default: the run's, "
                    "else cifar10_jpeg).")
flags.DEFINE_string("data_dir", None, "Its data folder (default: the run's).")
flags.DEFINE_integer("check_images", 1000, "Test images the exports are checked on.")
flags.DEFINE_boolean("int8", False, "Also export a dynamic-range int8 TFLite model.")
flags.DEFINE_integer("latency_repeats", 50, "Timed batch-1 calls per format.")
flags.DEFINE_integer("tflite_threads", None, "TFLite interpreter threads (default: TFLite's).")
flags.mark_flag_as_required("model_path")
flags.adopt_module_key_flags(common)  # --help lists --verbosity (quiet logs by default)
FLAGS = flags.FLAGS

_NAMES = ("student.keras", "model.keras")


def find_model(path: Path) -> Path:
    if path.is_dir():
        for name in _NAMES:
            if (path / name).exists():
                return path / name
        raise FileNotFoundError(f"{path} holds neither {' nor '.join(_NAMES)}.")
    if not path.exists():
        raise FileNotFoundError(f"Model file {path} does not exist.")
    return path


def run_dataset(model_path: Path) -> tuple:
    """(dataset, data_dir) of the run that wrote `model_path`, from its config.json."""
    config = model_path.parent / "config.json"
    if config.exists():
        values = json.loads(config.read_text())
        return values.get("dataset"), values.get("data_dir")
    return None, None


def check_images(dataset: str, data_dir, count: int, model=None):
    """`count` test images as pixels in [0, 255] (class-balanced subset), their labels, the name.

    With `model`, its class count must be the dataset's (checked before decoding).
    """
    import numpy as np
    import tensorflow as tf

    from kdkeras.data import load_dataset, make_input_pipeline
    from kdkeras.data.image_folder import bad_image_error, default_cifar10_jpeg_dir
    from kdkeras.export import check_classes

    # Image folders decode lazily here: only the test split is read.
    options = {"cache": False} if dataset in ("cifar10_jpeg", "image_folder") else {}
    splits = load_dataset(dataset, data_dir, **options)
    if model is not None:
        check_classes(model, splits.num_classes, splits.name)
    ds = make_input_pipeline(splits.test, training=False, batch_size=256,
                             subset=min(count, splits.num_test),
                             labels=getattr(splits, "test_labels", None))
    try:
        xs, ys = zip(*ds.as_numpy_iterator())
    except tf.errors.OpError as err:   # a bad file in a folder decoded on the fly
        if not options:
            raise
        root = Path(data_dir) if data_dir else default_cifar10_jpeg_dir()
        raise bad_image_error(root / "test", splits.image_shape, None, err.message) from None
    return np.concatenate(xs), np.concatenate(ys), splits.name


def print_table(report: dict) -> None:
    print(f"{'format':<22}{'size':>10}{'top-1 agree':>13}{'max |dlogit|':>14}"
          f"{'accuracy':>10}{'batch-1 ms':>12}")
    for fmt, e in report["formats"].items():
        print(f"{fmt:<22}{e['size_bytes'] / 1024:>8.0f}KB{e['top1_agreement']:>13.4f}"
              f"{e['max_abs_diff']:>14.2e}{e.get('accuracy', float('nan')):>10.4f}"
              f"{e['latency']['median_ms']:>12.3f}")
    devices = {e["latency"]["device"] for e in report["formats"].values()}
    print(f"latency: median of {report['latency_repeats']} batch-1 calls on {', '.join(sorted(devices))}")


def main(argv):
    del argv
    common.quiet_logs()
    from kdkeras.export import export_student
    from kdkeras.training.provenance import provenance, write_json_atomic

    absl_logging.set_verbosity(absl_logging.WARNING)   # SavedModel-writing chatter

    def run():
        from kdkeras.export import load_student
        from kdkeras.training.preflight import check_writable_dir

        model_path = find_model(Path(FLAGS.model_path))
        out_dir = Path(FLAGS.out_dir) if FLAGS.out_dir else model_path.parent / "export"
        check_writable_dir(out_dir, "--out_dir")
        model = load_student(model_path)   # a clear error for a corrupt file, before work
        dataset, data_dir = run_dataset(model_path)
        dataset = FLAGS.dataset or dataset or "cifar10_jpeg"
        data_dir = FLAGS.data_dir or data_dir
        images, labels, name = check_images(dataset, data_dir, FLAGS.check_images, model)
        report = export_student(model_path, out_dir, images=images, labels=labels,
                                int8=FLAGS.int8, latency_repeats=FLAGS.latency_repeats,
                                num_threads=FLAGS.tflite_threads)
        # The exports take pixels; report["input_normalization"] is what they apply.
        report.update(check_dataset=name,
                      latency_repeats=FLAGS.latency_repeats,
                      provenance=provenance(dataset=name, num_test=len(images)))
        write_json_atomic(out_dir / "export_report.json", report)
        print_table(report)
        print(f"-> {out_dir}/export_report.json")

    common.run_cli(run)


if __name__ == "__main__":
    app.run(main)
