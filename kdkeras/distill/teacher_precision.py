"""Frozen teachers in reduced precision: the same network computing in bfloat16.

The teachers of a distillation run are frozen: they are never differentiated
and always run in inference mode, so the forward pass is all that is asked of
them, and on most step budgets it is most of the step (3 ResNet-32 teachers
are about 65% of a K=3 ResNet-8 step on a CPU). Running a bfloat16 copy of
each teacher is safe for training: the Distiller casts every teacher output to
float32 before any loss (`Distiller.compute_terms`), the student and its
gradients stay float32, and bfloat16 keeps float32's exponent range, so no
loss scaling is needed. What changes is the teacher's logits and taps, by
bfloat16 round-off (8 bits of mantissa): see `precision_report`.

    distiller = Distiller(student, teachers, method_config("ours", teacher_precision="bfloat16"))
    # or by hand: Distiller(student, [reduced_precision_teacher(t) for t in teachers], ...)

Speed: on CPUs with AVX512-BF16 (or AMX) a bfloat16 ResNet-32 forward pass at
batch 128 takes about 0.67x the float32 time (measured here: 172 vs 258 ms on
2 loaded cores); on GPUs with tensor cores the gain is larger. On CPUs without
native bfloat16 it can be slower: measure (benchmarks/distill_step.py).
"""

from __future__ import annotations

from typing import Optional

import keras
import numpy as np

TEACHER_DTYPES = ("float32", "bfloat16", "mixed_bfloat16", "float16", "mixed_float16")


def reduced_precision_teacher(teacher: keras.Model, dtype: str = "bfloat16") -> keras.Model:
    """A frozen copy of the functional model `teacher` whose layers compute in `dtype`.

    Args:
      teacher: a functional Keras model (e.g. a loaded teacher `.keras`).
      dtype: a Keras dtype policy name: `"bfloat16"` (weights stored and used in
        bfloat16: half the memory, no per-call casts; the default),
        `"mixed_bfloat16"` (float32 weights cast on every call), the float16
        equivalents, or `"float32"` (returns `teacher` itself).

    Returns:
      A new model with the same layer names (taps included), the same input
      dtype (float32 images in, cast by the first layer) and `trainable=False`.
    """
    if dtype not in TEACHER_DTYPES:
        raise ValueError(f"Unknown teacher dtype {dtype!r}. Valid dtypes: {', '.join(TEACHER_DTYPES)}.")
    if dtype == "float32":
        return teacher
    if not hasattr(teacher, "_nodes_by_depth"):
        raise ValueError("reduced_precision_teacher needs a functional model. "
                         f"Received: {teacher.name!r} of type {type(teacher).__name__}.")
    config = teacher.get_config()
    for layer in config["layers"]:
        if layer["class_name"] != "InputLayer":   # inputs stay float32
            layer["config"]["dtype"] = dtype
    copy = teacher.__class__.from_config(config)
    copy.set_weights(teacher.get_weights())
    copy.trainable = False
    return copy


def precision_report(teacher: keras.Model, copy: keras.Model, images: np.ndarray) -> dict:
    """How far `copy` (e.g. a bfloat16 teacher) is from `teacher` on `images`.

    Returns top-1 agreement, the max and mean |Δlogit| and the largest relative
    error of the softmax probabilities at temperature 1.
    """
    a = np.asarray(teacher(images, training=False), np.float64)
    b = np.asarray(keras.ops.cast(copy(images, training=False), "float32"), np.float64)

    def softmax(z):
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    return {"top1_agreement": float(np.mean(a.argmax(-1) == b.argmax(-1))),
            "max_abs_logit_diff": float(np.max(np.abs(a - b))),
            "mean_abs_logit_diff": float(np.mean(np.abs(a - b))),
            "max_prob_diff": float(np.max(np.abs(softmax(a) - softmax(b))))}


def resolve_teacher_dtype(teacher_precision: str = "float32",
                          teacher_dtype: Optional[str] = None) -> str:
    """The dtype the Distiller's Keras teachers compute in.

    Args:
      teacher_precision: `DistillConfig.teacher_precision`: `"bfloat16"` gives
        bfloat16 teachers; `"float32"` and `"int8_ahead"` (whose Keras teachers
        only define taps and serve batches that come without outputs) float32.
      teacher_dtype: an explicit `TEACHER_DTYPES` entry, or None for the above.
        It may refine `"float32"` precision (e.g. `"mixed_bfloat16"`) but not
        contradict a config that asks for another.
    """
    implied = "bfloat16" if teacher_precision == "bfloat16" else "float32"
    if teacher_dtype is None:
        return implied
    if teacher_dtype not in TEACHER_DTYPES:
        raise ValueError(f"Unknown teacher dtype {teacher_dtype!r}. "
                         f"Valid dtypes: {', '.join(TEACHER_DTYPES)}.")
    if teacher_precision != "float32" and teacher_dtype != implied:
        raise ValueError(
            f"teacher_dtype={teacher_dtype!r} contradicts the config's "
            f"teacher_precision={teacher_precision!r}. Pass one of them.")
    return teacher_dtype
