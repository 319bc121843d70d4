"""How similar are K teachers' features, and how far apart are their Gram (FSP) matrices?

    python scripts/diagnose_teacher_grams.py --data=../shared/data/cifar10-jpeg \
        --teachers=results/cifar10-jpeg/teachers-full/resnet32-s{0,1,2}/model.keras \
        --out=results/cifar10-jpeg/teacher-grams/similarity-independent.json

P3 averages the Gram loss over K teachers. Its minimum is the teachers'
spread about their mean Gram, (1/K)Σ_k‖G_k − Ḡ‖², a floor no student gets
below (`kdkeras.losses.mean_teacher_gram_distance`). This measures, on test
images, per example:

  * linear CKA (Kornblith et al. 2019) of each teacher pair at every tap:
    1 for features equal up to a rotation of the channels and a scale;
  * for two conventions, the `fsp` baseline's (sseung0703: adjacent pairs,
    2×2 max-pool, ½·Σ squares ×10⁻³) and the `ours` method's Gram loss
    (pairs up to three taps apart, average pooling, mean of squares), each
    teacher pair's distance and the spread about the mean Gram:
      - "raw": the teachers as they are;
      - "permuted": teacher b's channels re-ordered tap by tap to best match
        teacher a's (a one-to-one assignment maximising the channels'
        correlation, fitted on the measured images themselves;
        `scipy.optimize.linear_sum_assignment`);
      - "procrustes": every teacher's taps rotated onto teacher 0's by the
        per-tap orthogonal Procrustes map (`kdkeras.losses.orthogonal_procrustes`)
        fitted on `--fit_images` training images (held out from the measured
        test images), what `teacher_alignment="procrustes"` does in training.

Input normalisation: a model that begins with an `input_normalization` layer
takes pixels in [0, 255]; any other (the committed teachers) is fed
(x/255 − mean)/std with the training images' own channel statistics, as
`kdkeras.data.numpy_data` normalised them when the teachers were trained.
The JSON (`--out`) says which, with the statistics and provenance.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
if __name__ == "__main__":
    flags.DEFINE_string("data", "../shared/data/cifar10-jpeg", "Image folder (or tar) of the data.")
    flags.DEFINE_string("cache", None, "An .npz to keep the decoded images in.")
    flags.DEFINE_list("teachers", None, "Saved .keras teachers (two or more).", required=True)
    flags.DEFINE_integer("num_images", 1000, "Test images to measure on (class-balanced).")
    flags.DEFINE_integer("fit_images", 1000, "Training images to fit the Procrustes maps on.")
    flags.DEFINE_string("out", None, "Write the measurements here as JSON.")

NORMALIZATION_LAYER = "input_normalization"


def model_inputs(model, images: np.ndarray, mean, std) -> tuple[np.ndarray, str]:
    """What `model` was trained on: raw [0, 255] pixels if it normalises them itself, else
    (x/255 − mean)/std. Returns the inputs and which of the two it is."""
    x = np.asarray(images, np.float32)
    if any(layer.name == NORMALIZATION_LAYER for layer in model.layers):
        return x, "pixels in [0, 255] (the model's own input_normalization layer)"
    mean = np.asarray(mean, np.float32)
    std = np.asarray(std, np.float32)
    return (x / 255.0 - mean) / std, "(x/255 - mean)/std with the given statistics"


def taps(model, images, batch_size: int = 250) -> list[np.ndarray]:
    from kdkeras.models import tapped_model

    outs = tapped_model(model).predict(images, batch_size=batch_size, verbose=0)
    return [np.asarray(o, "float32") for o in outs[1:]]


def permuted(feats_a, feats_b):
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


def procrustes_rotations(fit_feats, batch: int = 100) -> list[list[np.ndarray]]:
    """Per teacher, per tap: the orthogonal map of its taps onto teacher 0's (teacher 0: I)."""
    from keras import ops

    from kdkeras import losses

    rotations = []
    for feats in fit_feats:
        row = []
        for t, ref in zip(feats, fit_feats[0]):
            cross = sum(np.asarray(losses.tap_cross_product(t[i:i + batch], ref[i:i + batch]))
                        for i in range(0, len(t), batch))
            row.append(np.asarray(ops.convert_to_numpy(losses.orthogonal_procrustes(cross))))
        rotations.append(row)
    return rotations


def rotated(feats, rotations):
    return [f @ r for f, r in zip(feats, rotations)]


def conventions(num_taps: int) -> dict:
    """name → (pairs, reduction, λ, pool) of the Gram losses measured: `fsp` and `ours`."""
    from kdkeras import losses
    from kdkeras.distill import method_config
    from kdkeras.distill.feature_terms import squared_gram_form

    out = {}
    for name in ("fsp", "ours"):
        config = method_config(name)
        pairs = losses.cross_layer_pairs(list(range(num_taps)), config.cross_depth)
        reduction, weight, pool = squared_gram_form(config, len(pairs))
        out[name] = (pairs, reduction, weight, pool)
    return out


def pair_grams(feats, convention, batch: int = 250) -> list[np.ndarray]:
    from kdkeras import losses

    pairs, _, _, pool = convention
    chunks = [losses.pair_grams([f[i:i + batch] for f in feats], pairs, pool)
              for i in range(0, len(feats[0]), batch)]
    return [np.concatenate([np.asarray(c[p]) for c in chunks]) for p in range(len(pairs))]


def distance(grams_a, grams_b, convention) -> np.ndarray:
    """λ·Σ_pairs (Σ|mean) of squared Gram differences, per example."""
    _, reduction, weight, _ = convention
    reduce = np.sum if reduction == "sum" else np.mean
    return weight * sum(reduce((a - b) ** 2, axis=(1, 2)) for a, b in zip(grams_a, grams_b))


def spread(grams, convention) -> np.ndarray:
    """(1/K) Σ_k d(G_k, Ḡ) per example: the floor of the K-teacher mean Gram loss."""
    mean = [np.mean([g[p] for g in grams], axis=0) for p in range(len(grams[0]))]
    return np.mean([distance(g, mean, convention) for g in grams], axis=0)


def tap_cka(feats_a, feats_b) -> list[float]:
    from kdkeras import losses

    return [float(losses.linear_cka(a, b)) for a, b in zip(feats_a, feats_b)]


def measure(test_feats, fit_feats) -> dict:
    """Every measurement of the module docstring, from taps (one list per teacher)."""
    k = len(test_feats)
    rotations = procrustes_rotations(fit_feats)
    aligned = [rotated(f, r) for f, r in zip(test_feats, rotations)]
    out = {"cka_per_tap": {}, "gram_distances": {}}
    for a, b in itertools.combinations(range(k), 2):
        out["cka_per_tap"][f"{a}-{b}"] = tap_cka(test_feats[a], test_feats[b])
    for name, conv in conventions(len(test_feats[0])).items():
        raw = [pair_grams(f, conv) for f in test_feats]
        rot = [pair_grams(f, conv) for f in aligned]
        pairwise = {}
        for a, b in itertools.combinations(range(k), 2):
            perm = pair_grams(permuted(test_feats[a], test_feats[b]), conv)
            pairwise[f"{a}-{b}"] = {
                "raw": float(distance(raw[a], raw[b], conv).mean()),
                "permuted": float(distance(raw[a], perm, conv).mean()),
                "procrustes": float(distance(rot[a], rot[b], conv).mean()),
            }
        out["gram_distances"][name] = {
            "pairs": [list(p) for p in conv[0]], "reduction": conv[1], "weight": conv[2],
            "pool": conv[3], "pairwise": pairwise,
            "spread_about_mean_gram": {"raw": float(spread(raw, conv).mean()),
                                       "procrustes": float(spread(rot, conv).mean())},
        }
    return out


def main(argv):
    del argv
    import kdkeras.models
    from kdkeras.data.numpy_data import balanced_subset, load_image_arrays
    from kdkeras.training.provenance import provenance

    data = load_image_arrays(FLAGS.data, cache=FLAGS.cache)
    test_images, _ = balanced_subset(data.x_test, data.y_test, FLAGS.num_images, seed=0)
    fit_images, _ = balanced_subset(data.x_train, data.y_train, FLAGS.fit_images, seed=0)
    test_feats, fit_feats, fed = [], [], set()
    for path in FLAGS.teachers:
        model = kdkeras.models.load_teacher(path)   # wrapped with its recorded statistics
        x_test, how = model_inputs(model, test_images, data.mean, data.std)
        x_fit, _ = model_inputs(model, fit_images, data.mean, data.std)
        fed.add(how)
        test_feats.append(taps(model, x_test))
        fit_feats.append(taps(model, x_fit))
    result = {
        "dataset": "CIFAR-10 (JPEG)",
        "num_images": int(len(test_images)), "images": "test split, class-balanced subset seed 0",
        "fit_images": int(len(fit_images)),
        "fit_images_from": "training split, class-balanced subset seed 0 (Procrustes maps)",
        "teachers": FLAGS.teachers,
        "input_normalization": {
            "fed": sorted(fed), "mean": list(data.mean), "std": list(data.std),
            "statistics": "per-channel mean/std in [0, 1] units of the training images "
                          "(kdkeras.data.numpy_data.load_image_arrays), as the teachers were "
                          "trained"},
        **measure(test_feats, fit_feats),
        "provenance": provenance(num_test=int(len(test_images))),
    }
    print(json.dumps({k: v for k, v in result.items() if k != "provenance"}, indent=2))
    if FLAGS.out:
        with open(FLAGS.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    app.run(main)
