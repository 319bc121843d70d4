"""How far apart are the FSP matrices of teachers trained from different seeds?

    python scripts/diagnose_teacher_grams.py --data=../shared/data/cifar10-jpeg \
        --teachers=results/cifar10-jpeg/teachers-full/resnet32-s{0,1,2}/model.keras

P3 averages the Gram (FSP) loss over K teachers. Its minimum is the teachers'
spread about their mean Gram, (1/K)Σ_k‖G_k − Ḡ‖², a floor no student gets
below. This measures, on test images, per example and summed over the pairs
(FSP's sseung0703 convention, the `fsp` method's):
  * that spread for the given teachers;
  * each teacher pair's FSP distance as the teachers are, and after teacher
    b's channels are re-ordered to match teacher a's tap by tap (a one-to-one
    assignment maximising the channels' correlation over the images:
    `scipy.optimize.linear_sum_assignment`). If most of the distance goes
    away, the teachers differ mainly in the order of their channels, which an
    average of their Grams cannot undo.
Writes a JSON with provenance (`--out`).
"""

import itertools
import json

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("data", "../shared/data/cifar10-jpeg", "Image folder (or tar) of the data.")
flags.DEFINE_string("cache", None, "An .npz to keep the decoded images in.")
flags.DEFINE_list("teachers", None, "Saved .keras teachers (two or more).", required=True)
flags.DEFINE_integer("num_images", 1000, "Test images to measure on.")
flags.DEFINE_string("out", None, "Write the measurements here as JSON.")


def taps(model, images):
    from kdkeras.models import tapped_model

    outs = tapped_model(model).predict(images, batch_size=250, verbose=0)
    return [np.asarray(o, "float32") for o in outs[1:]]


def fsp_distance(feats_a, feats_b) -> np.ndarray:
    from kdkeras.losses import fsp_loss

    return np.asarray(fsp_loss(feats_a, feats_b, mode="sseung0703"))


def align(feats_a, feats_b):
    """feats_b with each tap's channels re-ordered to best match feats_a's."""
    from scipy.optimize import linear_sum_assignment

    out = []
    for a, b in zip(feats_a, feats_b):
        fa = a.reshape(-1, a.shape[-1])
        fb = b.reshape(-1, b.shape[-1])
        fa = (fa - fa.mean(0)) / (fa.std(0) + 1e-6)
        fb = (fb - fb.mean(0)) / (fb.std(0) + 1e-6)
        corr = fa.T @ fb / len(fa)
        _, cols = linear_sum_assignment(-corr)
        out.append(b[..., cols])
    return out


def main(argv):
    del argv
    from kdkeras.data.numpy_data import ArrayBatches, load_image_arrays

    import kdkeras.models
    from kdkeras.training.provenance import provenance

    data = load_image_arrays(FLAGS.data, cache=FLAGS.cache)
    batches = ArrayBatches(data.x_test, data.y_test, batch_size=FLAGS.num_images, training=False,
                           augment=False, subset=FLAGS.num_images)
    images = np.asarray(next(iter(batches))[0])
    feats = [taps(kdkeras.models.load_teacher(path), images) for path in FLAGS.teachers]
    k = len(feats)
    # The spread about the mean Gram equals (1/K²)·Σ_{a<b} ‖G_a − G_b‖² per pair (for a
    # squared, sum-reduced distance), so it follows from the pairwise distances.
    pairs = {}
    for a, b in itertools.combinations(range(k), 2):
        raw = fsp_distance(feats[a], feats[b])
        aligned = fsp_distance(feats[a], align(feats[a], feats[b]))
        pairs[f"{a}-{b}"] = {"raw": float(raw.mean()), "channels_aligned": float(aligned.mean())}
    spread = sum(p["raw"] for p in pairs.values()) / k ** 2
    result = {"num_images": int(len(images)), "teachers": FLAGS.teachers,
              "fsp_mode": "sseung0703", "pairwise_fsp_distance": pairs,
              "spread_about_mean_gram": spread,
              "provenance": provenance(num_test=int(len(images)))}
    print(json.dumps({k: v for k, v in result.items() if k != "provenance"}, indent=2))
    if FLAGS.out:
        with open(FLAGS.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    app.run(main)
