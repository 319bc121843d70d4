"""How far reduced-precision teachers are from the float32 ones, on real data.

A benchmark, not a test: it prints a table, then one line of JSON.

    .venv/bin/python benchmarks/teacher_precision.py \
        --teachers=runs/real/cifar10-jpeg/teachers/resnet32-s0/model.keras,...

The speed options of `DistillConfig.teacher_precision` change what the student
is distilled towards by the teachers' round-off. Before any training run
measures the student's accuracy with them, this measures the targets
themselves, for each teacher on `--num_images` test images: its top-1 in
float32, bfloat16 and int8 (a fully int8 TFLite model calibrated on 256
training images, as `teacher_precision="int8_ahead"` builds it), the top-1
agreement with float32, KL(p_fp32 ‖ p_q) at T = 1 (the paper's KL) and T = 4
(Hinton KD), and the relative error of the taps; and for the K teachers
together, the relative error of the mean Gram matrix Ḡ_T of each cross-three
pair (what the feature term pulls the student to) and the relative change of
the feature loss of an untrained ResNet-8 against them.
"""

from __future__ import annotations

import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402
from absl import logging as absl_logging  # noqa: E402

flags.DEFINE_list("teachers", [], "Teacher .keras files (one architecture).")
flags.DEFINE_string("dataset", "cifar10_jpeg", "kdkeras dataset name.")
flags.DEFINE_string("data_dir", None, "Dataset directory (default: the dataset's).")
flags.DEFINE_integer("num_images", 1000, "Test images compared.")
flags.DEFINE_integer("calibration_images", 256, "Training images for int8 calibration.")
FLAGS = flags.FLAGS


def _softmax(z, t=1.0):
    import numpy as np

    z = z / t
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _kl(p, q):
    import numpy as np

    return float(np.mean(np.sum(p * (np.log(np.maximum(p, 1e-30)) - np.log(np.maximum(q, 1e-30))),
                                axis=-1)))


def _rel(a, b):
    """‖a − b‖ / ‖b‖ over the whole array."""
    import numpy as np

    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def main(argv):
    del argv
    import keras
    import numpy as np

    from kdkeras import losses, models
    from kdkeras.data import load_dataset, make_input_pipeline
    from kdkeras.distill.teacher_outputs import calibration_images, int8_teachers
    from kdkeras.distill.teacher_precision import reduced_precision_teacher

    absl_logging.set_verbosity(absl_logging.WARNING)
    if not FLAGS.teachers:
        raise app.UsageError("Pass --teachers=a.keras,b.keras,...")
    started = time.perf_counter()
    splits = load_dataset(FLAGS.dataset, FLAGS.data_dir)
    test = make_input_pipeline(splits.test, training=False, batch_size=128, augment=False,
                               subset=FLAGS.num_images)
    train = make_input_pipeline(splits.train, training=True, batch_size=128, seed=0,
                                augment=True)
    x = np.concatenate([np.asarray(b[0]) for b in test])
    y = np.concatenate([np.asarray(b[1]) for b in test])
    calib = calibration_images(train, FLAGS.calibration_images)

    teachers = [models.load_teacher(p) for p in FLAGS.teachers]  # they take pixels
    names = models.tap_names(teachers[0])
    pairs = losses.cross_layer_pairs(list(range(len(names))), 3)
    fast = int8_teachers(teachers, [names] * len(teachers), calib)

    def run_keras(model):
        view = models.tapped_model(model, names)
        outs = [view.predict(x[i:i + 128], verbose=0) for i in range(0, len(x), 128)]
        return [np.concatenate([np.asarray(o[j], np.float32) for o in outs])
                for j in range(len(outs[0]))]

    def run_tflite(t):
        outs = [t(x[i:i + 128]) for i in range(0, len(x), 128)]
        return [np.concatenate([o[j] for o in outs]) for j in range(len(outs[0]))]

    outputs = {"float32": [run_keras(t) for t in teachers],
               "bfloat16": [run_keras(reduced_precision_teacher(t, "bfloat16")) for t in teachers],
               "int8": [run_tflite(t) for t in fast]}
    rows = []
    for k in range(len(teachers)):
        ref = outputs["float32"][k]
        for precision, outs in outputs.items():
            o = outs[k]
            rows.append({
                "teacher": k, "precision": precision,
                "top1": float(np.mean(o[0].argmax(-1) == y)),
                "agreement": float(np.mean(o[0].argmax(-1) == ref[0].argmax(-1))),
                "kl_t1": _kl(_softmax(ref[0]), _softmax(o[0])),
                "kl_t4": _kl(_softmax(ref[0], 4.0), _softmax(o[0], 4.0)),
                "tap_rel_error": max(_rel(a, b) for a, b in zip(o[1:], ref[1:]))})

    keras.utils.set_random_seed(0)
    student = models.tapped_model(models.get("resnet8", num_classes=splits.num_classes,
                                             input_shape=splits.image_shape,
                                             input_normalization=(splits.mean, splits.std)))
    s_feats = [np.asarray(f) for f in student.predict(x[:256], verbose=0)[1:]]
    grams = {}
    for precision, outs in outputs.items():
        per_teacher = [losses.pair_grams([f[:256] for f in o[1:]], pairs) for o in outs]
        grams[precision] = [np.mean([np.asarray(g[p]) for g in per_teacher], axis=0)
                            for p in range(len(pairs))]
        loss = losses.mean_teacher_gram_loss(per_teacher, losses.pair_grams(s_feats, pairs))
        grams[precision + "_loss"] = float(np.mean(np.asarray(loss)))
    ensemble = {p: {"mean_gram_rel_error": max(_rel(a, b)
                                               for a, b in zip(grams[p], grams["float32"])),
                    "feature_loss_rel_change": grams[p + "_loss"] / grams["float32_loss"] - 1}
                for p in ("bfloat16", "int8")}

    print(f"{len(teachers)} teachers, {len(x)} {splits.name} test images; int8 calibrated on "
          f"{len(calib)} training images")
    print(f"{'teacher':>7} {'precision':>9} {'top1':>7} {'agree':>7} {'KL T=1':>9} {'KL T=4':>9} "
          f"{'tap err':>8}")
    for r in rows:
        print(f"{r['teacher']:>7} {r['precision']:>9} {r['top1']:>7.4f} {r['agreement']:>7.4f} "
              f"{r['kl_t1']:>9.2e} {r['kl_t4']:>9.2e} {r['tap_rel_error']:>8.4f}")
    for p, e in ensemble.items():
        print(f"K={len(teachers)} mean Gram, {p}: largest relative error over pairs "
              f"{e['mean_gram_rel_error']:.4f}; feature loss of an untrained ResNet-8 "
              f"{100 * e['feature_loss_rel_change']:+.2f}%")
    print(json.dumps({"rows": rows, "ensemble": ensemble, "num_images": len(x),
                      "seconds": round(time.perf_counter() - started, 1)}))


if __name__ == "__main__":
    app.run(main)
