"""Distils a student from K teachers with the paper's method or a baseline.

    # train 3 ResNet-32 teachers first, then distil ResNet-8 with P1+P2+P3 and β:
    python experiments/distill.py --model=resnet8 --teacher_model=resnet32 \
        --train_teachers=3 --method=ours --preset=fast \
        --data_dir=../shared/data/cifar10-jpeg --workdir=runs/r32-r8-ours

    # or from existing teacher checkpoints:
    python experiments/distill.py --teachers=t0/model.keras,t1/model.keras,t2/model.keras ...

    # the same with the teachers in bfloat16, or as int8 TFLite models run ahead of the step:
    python experiments/distill.py ... --teacher_precision=bfloat16   # or int8_ahead

    # P3 variants (docs/ensemble.md): per-example teacher weights, KL form, aligned taps:
    python experiments/distill.py ... --teacher_weighting=confidence --teacher_alignment=procrustes

    # any DistillConfig: a flag per field, or a JSON file of them, e.g. a reproduce table
    # row's method and options ("P1 (cross-two)": FSP with exact distance 2):
    echo '{"method": "fsp", "cross_depth": [2]}' > row.json
    python experiments/distill.py ... --train_teachers=1 --distill_config=row.json

Saves the student alone as <workdir>/student.keras (no teachers, no adapters),
with config, history, TensorBoard logs, checkpoints and results.json.
Methods: student, hinton, fsp (two-stage), fsp_joint, fsp_kl, rkd, sskd_svd, p1, p1_p2, ours.
"""

import dataclasses

from absl import app, flags

import common
from common import FLAGS

common.define_common_flags(default_model="resnet8")
flags.adopt_module_key_flags(common)  # --help lists the shared flags too
flags.DEFINE_string("teacher_model", "resnet32", "Registry name of the teachers' architecture.")
flags.DEFINE_list("teachers", [], "Teacher checkpoint paths (.keras files or run directories).")
flags.DEFINE_integer("train_teachers", 0, "Train K teachers first (seeds 0..K-1) in <workdir>/teachers.")
flags.DEFINE_string("method", None, "Distillation method (see kdkeras.distill.METHODS). "
                    "Default: --distill_config's \"method\", else ours.")
flags.DEFINE_boolean("allow_duplicate_teachers", False, "Accept one checkpoint given more than "
                     "once in --teachers (it distils as one teacher; plumbing tests only).")
flags.DEFINE_string("distill_config", None, "A JSON object of DistillConfig fields and "
                    "optionally \"method\", e.g. a reproduce table row's method and options: "
                    "{\"method\": \"fsp\", \"cross_depth\": [2]}. A flag below overrides its field.")
# One flag per DistillConfig field but `method`, named as the field; None keeps the
# method's value (tests/experiments/test_distill_script.py checks that none is missing).
flags.DEFINE_enum("feature_loss", None, ["gram", "fsp", "rkd", "svd", "none"],
                  "The feature term: the paper's Gram loss, FSP, RKD, SSKD_SVD's, or none.")
flags.DEFINE_string("cross_depth", None, "P1: Gram pairs up to this distance (1=FSP, 3=paper), "
                    "or exact distances like '2' prefixed with '=' ('=2' is cross-two only).")
flags.DEFINE_boolean("use_kl", None, "P2: the KL(p_T||p_S) term.")
flags.DEFINE_float("temperature", None, "Softmax temperature of the KL term.")
flags.DEFINE_float("gram_weight", None, "λ of the Gram loss (Eq. 4).")
flags.DEFINE_enum("gram_reduction", None, ["mean", "sum", "mean_over_pairs"],
                  "Gram loss reduction (mean_over_pairs: Eq. 4 as printed).")
flags.DEFINE_enum("pool", None, ["avg", "max"], "Pooling of the larger map of a Gram pair.")
flags.DEFINE_float("kl_weight", None, "Weight of the KL term (Hinton KD: α·T²).")
flags.DEFINE_float("ce_weight", None, "Weight of the cross-entropy term (Hinton KD: 1-α).")
flags.DEFINE_float("feature_weight", None, "Weight of the feature term.")
flags.DEFINE_enum("beta_mode", None, ["paper", "inverted", "sseung0703", "off"], "β rule.")
flags.DEFINE_enum("beta_terms", None, ["kl+feature", "feature"], "Terms forming ∇KD for β.")
flags.DEFINE_integer("epoch_origin", None, "p = epoch + origin in β (0 or 1).")
flags.DEFINE_enum("adapter_side", None, ["teacher", "student", "none"], "Where 1x1 adapters go.")
flags.DEFINE_boolean("always_adapt", None, "Add adapters even where channel counts match.")
flags.DEFINE_float("rkd_distance_weight", None, "RKD's distance weight (25 in Park et al.).")
flags.DEFINE_float("rkd_angle_weight", None, "RKD's angle weight (50 in Park et al.).")
flags.DEFINE_integer("svd_k", None, "Singular vectors kept by SSKD_SVD.")
flags.DEFINE_enum("fsp_mode", None, ["paper", "torchdistill", "repdistiller", "sseung0703"],
                  "FSP convention (kdkeras.losses.FSP_MODES).")
flags.DEFINE_float("init_stage_fraction", None, "Share of the epochs trained on the feature "
                   "term alone first (two-stage FSP: 0.125); 0: one joint stage.")
flags.DEFINE_enum("teacher_precision", None, ["float32", "bfloat16", "int8_ahead"],
                  "How the frozen teachers run: float32 (default), bfloat16 copies, or int8 "
                  "TFLite teachers run ahead in the input pipeline (TensorFlow backend).")
# P3 variants (issue 16, docs/ensemble.md).
flags.DEFINE_enum("teacher_weighting", None, ["mean", "confidence", "closest"],
                  "Per-example teacher weights in the KL and feature terms: mean (the paper's "
                  "1/K), confidence (CA-MKD: from each teacher's CE) or closest to the student.")
flags.DEFINE_enum("ensemble_kl", None, ["mean_of_kls", "kl_to_mean"],
                  "The K-teacher KL: the paper's mean of KLs, or KL to the mean teacher.")
flags.DEFINE_enum("teacher_alignment", None, ["none", "procrustes"],
                  "Rotate each teacher's taps onto teacher 0's (orthogonal Procrustes, fitted on "
                  "the first 1,024 training images) before averaging Grams.")

# Left out of a run's options at DistillConfig's default (any other field given is
# recorded): these came after runs were recorded without them, and a run keeps the
# config, and so the finished run it matches on --resume, it had before they existed.
_LEFT_OUT_AT_DEFAULT = ("teacher_precision", "teacher_weighting", "ensemble_kl",
                        "teacher_alignment")


def parse_cross_depth(text):
    if text is None:
        return None
    exact = text.startswith("=")
    values = tuple(int(v) for v in text.lstrip("=").split(","))
    return values if exact or len(values) > 1 else values[0]


def distill_spec() -> tuple[str, tuple]:
    """(method, sorted DistillConfig overrides): --distill_config's, then the flags given."""
    from kdkeras.distill import DistillConfig
    from kdkeras.training.checkpoints import field_defaults

    options = read_distill_config(FLAGS.distill_config) if FLAGS.distill_config else {}
    method = options.pop("method", None)
    if FLAGS.method and method not in (None, FLAGS.method):
        raise ValueError(f"--method={FLAGS.method} and --distill_config's method {method!r} "
                         "disagree: give one.")
    defaults = field_defaults(DistillConfig)
    for name in defaults.keys() - {"method"}:
        value = getattr(FLAGS, name)
        if name == "cross_depth":
            value = parse_cross_depth(value)
        if value is not None:
            options[name] = None if (name, value) == ("feature_loss", "none") else value
    for name in _LEFT_OUT_AT_DEFAULT:
        if name in options and options[name] == defaults[name]:
            del options[name]
    return FLAGS.method or method or "ours", tuple(sorted(options.items()))


def read_distill_config(path: str) -> dict:
    """The DistillConfig fields (and "method") of a JSON file; DistillConfig checks their types."""
    import json

    from kdkeras.distill import DistillConfig

    try:
        with open(path) as f:
            options = json.load(f)
    except (OSError, ValueError) as err:
        raise ValueError(f"--distill_config={path}: not a readable JSON file ({err}).") from None
    if not isinstance(options, dict):
        raise ValueError(f"--distill_config={path} must hold a JSON object of DistillConfig "
                         f"fields. Received: {options!r}.")
    fields = [f.name for f in dataclasses.fields(DistillConfig)]
    unknown = sorted(options.keys() - set(fields))
    if unknown:
        raise ValueError(f"--distill_config={path}: unknown DistillConfig field(s) {unknown}. "
                         f"Valid fields: {', '.join(fields)}.")
    # JSON has no tuples: a list is a tuple field's value (cross_depth's exact distances).
    return {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}


def refuse_flag_combinations(options: dict) -> None:
    """Refuses, before any work, the flag combinations that cannot run (one line each)."""
    if (FLAGS.train_teachers and FLAGS.mixed_precision
            and options.get("teacher_precision") == "int8_ahead"):
        raise ValueError(
            "--teacher_precision=int8_ahead converts the teachers to TFLite, which cannot "
            f"convert teachers trained under --mixed_precision={FLAGS.mixed_precision}. Train "
            "them in float32 first (experiments/train.py) and pass --teachers=..., or use "
            "--teacher_precision=bfloat16.")


def main(argv):
    del argv
    common.quiet_logs()
    from kdkeras.training.config import DistillRunConfig, resolve_config
    from kdkeras.training.runs import distill_model

    def run():
        method, options = distill_spec()
        refuse_flag_combinations(dict(options))
        dataset = common.infer_dataset(FLAGS.dataset, FLAGS.data_dir)
        overrides = common.common_overrides()
        overrides["workdir"] = overrides["workdir"] or (
            f"runs/distill/{FLAGS.teacher_model}-{FLAGS.model}-{method}-s{FLAGS.seed}")
        config = resolve_config(
            DistillRunConfig, FLAGS.preset, dataset, teacher_model=FLAGS.teacher_model,
            teachers=tuple(FLAGS.teachers), train_teachers=FLAGS.train_teachers,
            method=method, distill_options=options, **overrides)
        results = distill_model(config, allow_duplicate_teachers=FLAGS.allow_duplicate_teachers)
        print(f"{config.model} ({config.method}, K={len(results['teachers'])}): test accuracy "
              f"{results['test_accuracy']:.4f} -> {config.workdir}/student.keras")

    common.run_cli(run)


if __name__ == "__main__":
    app.run(main)
