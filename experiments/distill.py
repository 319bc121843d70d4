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

Saves the student alone as <workdir>/student.keras (no teachers, no adapters),
with config, history, TensorBoard logs, checkpoints and results.json.
Methods: student, hinton, fsp (two-stage), fsp_joint, fsp_kl, rkd, sskd_svd, p1, p1_p2, ours.
"""

from absl import app, flags

import common
from common import FLAGS

common.define_common_flags(default_model="resnet8")
flags.adopt_module_key_flags(common)  # --help lists the shared flags too
flags.DEFINE_string("teacher_model", "resnet32", "Registry name of the teachers' architecture.")
flags.DEFINE_list("teachers", [], "Teacher checkpoint paths (.keras files or run directories).")
flags.DEFINE_integer("train_teachers", 0, "Train K teachers first (seeds 0..K-1) in <workdir>/teachers.")
flags.DEFINE_string("method", "ours", "Distillation method (see kdkeras.distill.METHODS).")
flags.DEFINE_boolean("allow_duplicate_teachers", False, "Accept one checkpoint given more than "
                     "once in --teachers (it distils as one teacher; plumbing tests only).")
# The paper's switches; None keeps the method's value.
flags.DEFINE_string("cross_depth", None, "P1: Gram pairs up to this distance (1=FSP, 3=paper), "
                    "or exact distances like '2' prefixed with '=' ('=2' is cross-two only).")
flags.DEFINE_boolean("use_kl", None, "P2: the KL(p_T||p_S) term.")
flags.DEFINE_float("temperature", None, "Softmax temperature of the KL term.")
flags.DEFINE_float("gram_weight", None, "λ of the Gram loss (Eq. 4).")
flags.DEFINE_enum("gram_reduction", None, ["mean", "sum", "mean_over_pairs"],
                  "Gram loss reduction (mean_over_pairs: Eq. 4 as printed).")
flags.DEFINE_enum("pool", None, ["avg", "max"], "Pooling of the larger map of a Gram pair.")
flags.DEFINE_enum("beta_mode", None, ["paper", "inverted", "sseung0703", "off"], "β rule.")
flags.DEFINE_enum("beta_terms", None, ["kl+feature", "feature"], "Terms forming ∇KD for β.")
flags.DEFINE_integer("epoch_origin", None, "p = epoch + origin in β (0 or 1).")
flags.DEFINE_enum("adapter_side", None, ["teacher", "student", "none"], "Where 1x1 adapters go.")
flags.DEFINE_enum("teacher_precision", None, ["float32", "bfloat16", "int8_ahead"],
                  "How the frozen teachers run: float32 (default), bfloat16 copies, or int8 "
                  "TFLite teachers run ahead in the input pipeline (TensorFlow backend).")

# P3 variants (issue 16, docs/ensemble.md); a flag at its default is left out of the config.
flags.DEFINE_enum("teacher_weighting", None, ["mean", "confidence", "closest"],
                  "How the K teachers are weighted per example in the KL and feature terms: "
                  "mean (the paper's 1/K), confidence (CA-MKD: from each teacher's CE on the "
                  "label) or closest (the teacher nearest the student).")
flags.DEFINE_enum("ensemble_kl", None, ["mean_of_kls", "kl_to_mean"],
                  "The K-teacher KL: the paper's mean of KLs, or KL to the mean teacher.")
flags.DEFINE_enum("teacher_alignment", None, ["none", "procrustes"],
                  "Rotate each teacher's taps onto teacher 0's (per-tap orthogonal Procrustes "
                  "maps fitted on the first 1,024 training images) before averaging Grams.")

_SWITCHES = ("use_kl", "temperature", "gram_weight", "gram_reduction", "pool", "beta_mode",
             "beta_terms", "epoch_origin", "adapter_side")
_ENSEMBLE_DEFAULTS = {"teacher_weighting": "mean", "ensemble_kl": "mean_of_kls",
                      "teacher_alignment": "none"}


def parse_cross_depth(text):
    if text is None:
        return None
    exact = text.startswith("=")
    values = tuple(int(v) for v in text.lstrip("=").split(","))
    return values if exact or len(values) > 1 else values[0]


def refuse_flag_combinations() -> None:
    """Refuses, before any work, the flag combinations that cannot run (one line each)."""
    if (FLAGS.train_teachers and FLAGS.mixed_precision
            and FLAGS.teacher_precision == "int8_ahead"):
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
        refuse_flag_combinations()
        options = {n: getattr(FLAGS, n) for n in _SWITCHES if getattr(FLAGS, n) is not None}
        # The default precision is left out, so that such a run's config (and how it
        # compares with finished runs) is the one it had before the flag existed.
        if FLAGS.teacher_precision not in (None, "float32"):
            options["teacher_precision"] = FLAGS.teacher_precision
        for name, default in _ENSEMBLE_DEFAULTS.items():
            if getattr(FLAGS, name) not in (None, default):
                options[name] = getattr(FLAGS, name)
        depth = parse_cross_depth(FLAGS.cross_depth)
        if depth is not None:
            options["cross_depth"] = depth
        dataset = common.infer_dataset(FLAGS.dataset, FLAGS.data_dir)
        overrides = common.common_overrides()
        overrides["workdir"] = overrides["workdir"] or (
            f"runs/distill/{FLAGS.teacher_model}-{FLAGS.model}-{FLAGS.method}-s{FLAGS.seed}")
        config = resolve_config(
            DistillRunConfig, FLAGS.preset, dataset, teacher_model=FLAGS.teacher_model,
            teachers=tuple(FLAGS.teachers), train_teachers=FLAGS.train_teachers,
            method=FLAGS.method, distill_options=tuple(sorted(options.items())), **overrides)
        results = distill_model(config, allow_duplicate_teachers=FLAGS.allow_duplicate_teachers)
        print(f"{config.model} ({config.method}, K={len(results['teachers'])}): test accuracy "
              f"{results['test_accuracy']:.4f} -> {config.workdir}/student.keras")

    common.run_cli(run)


if __name__ == "__main__":
    app.run(main)
