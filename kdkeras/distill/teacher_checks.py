"""Teacher sets the Distiller must not silently accept (issue 21).

- The student among its own teachers (`Distiller(student, [student])`): the
  teachers are frozen, so the student would be frozen too and "train" without a
  single change. Refused.
- One teacher model given twice: K copies of one teacher distil as that one
  teacher does (the 1/K mean of equal terms), at K times the cost. Refused.
- Two teacher models with the same weights (one checkpoint loaded twice): the
  same, but it can be meant (a smoke run testing the K-teacher plumbing with one
  checkpoint): a warning naming them.
"""

from __future__ import annotations

import hashlib
import warnings
from typing import Sequence

import keras
import numpy as np


def _weights_digest(model: keras.Model) -> str:
    digest = hashlib.sha256()
    for w in model.weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(w)).tobytes())
    return digest.hexdigest()


def check_teacher_set(student: keras.Model, teachers: Sequence[keras.Model]) -> None:
    """Raises on the student among its teachers or a teacher given twice; warns on equal weights."""
    student_vars = {id(v) for v in student.weights}
    for k, teacher in enumerate(teachers):
        if teacher is student or student_vars & {id(v) for v in teacher.weights}:
            raise ValueError(
                f"Teacher {k} ({teacher.name}) is the student itself (or shares its weights): "
                "teachers are frozen, so the student would not train. Pass teacher models "
                "distinct from the student.")
    first = {}
    for k, teacher in enumerate(teachers):
        if id(teacher) in first:
            raise ValueError(
                f"Teachers {first[id(teacher)]} and {k} are the same model ({teacher.name}); K "
                "copies of one teacher distil as that one teacher does, at K times the cost. "
                "Pass K distinct teachers.")
        first[id(teacher)] = k
    if len(teachers) < 2:
        return
    seen = {}
    for k, teacher in enumerate(teachers):
        digest = _weights_digest(teacher)
        if digest in seen:
            warnings.warn(
                f"Teachers {seen[digest]} and {k} ({teacher.name}) have identical weights (one "
                "checkpoint loaded twice?): they distil as one teacher does, at twice the cost.",
                stacklevel=3)
        else:
            seen[digest] = k
