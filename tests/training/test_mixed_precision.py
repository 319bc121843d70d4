"""Mixed precision: the models compute in float16/bfloat16, the losses and Grams stay float32."""

import keras
import numpy as np
import pytest

from kdkeras import models
from kdkeras.distill import Distiller, method_config
from kdkeras.losses import gram


@pytest.fixture
def policy(request):
    keras.mixed_precision.set_global_policy(request.param)
    try:
        yield request.param
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"], indirect=True)
def test_losses_and_gram_matrices_are_float32(policy, monkeypatch):
    gram_dtypes = []
    original = gram.gram_matrix

    def recording_gram_matrix(f1, f2, pool="avg"):
        out = original(f1, f2, pool)
        gram_dtypes.append(keras.backend.standardize_dtype(out.dtype))
        return out

    monkeypatch.setattr(gram, "gram_matrix", recording_gram_matrix)
    keras.utils.set_random_seed(0)
    shape = dict(num_classes=3, input_shape=(8, 8, 3))
    student, teacher = models.get("resnet8", **shape), models.get("resnet8", **shape)
    d = Distiller(student, [teacher], method_config("ours"))
    d.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    # mixed_float16 needs loss scaling; the step scales and unscales itself.
    assert isinstance(d.optimizer, keras.optimizers.LossScaleOptimizer) == (
        policy == "mixed_float16")
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, size=(4, 8, 8, 3)).astype("float32")
    y = np.array([0, 1, 2, 0], "int32")

    outputs = d.student_outputs(x, training=False)
    assert keras.backend.standardize_dtype(outputs[0].dtype) == policy.split("_")[1]   # the model computes in 16 bits
    terms = d.compute_terms(y, outputs, d.teacher_outputs(x))
    for name in ("ce", "kl", "feature", "ce_side", "kd_side", "logits"):
        assert keras.backend.standardize_dtype(terms[name].dtype) == "float32", name
    assert gram_dtypes and set(gram_dtypes) == {"float32"}

    before = [w.copy() for w in student.get_weights()]
    logs = d.train_on_batch(x, y, return_dict=True)
    assert all(np.isfinite(float(v)) for v in logs.values()), logs
    assert 0.0 < logs["kd_scale"] <= 1.0
    assert all(v.dtype == "float32" for v in student.trainable_variables)
    moved = max(float(np.max(np.abs(a - b))) for a, b in zip(before, student.get_weights()))
    assert moved > 1e-4   # the loss-scaled step applied an update (not skipped as non-finite)
