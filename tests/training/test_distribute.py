"""The Distiller under `tf.distribute.MirroredStrategy` on two logical CPU devices.

One step of the full method (K=2 teachers, Gram + KL + β, weight decay, Nesterov
momentum) on a global batch of 8 split 4 + 4 over two replicas must give what
the default strategy gives on the same 8 examples: the same losses, the same τ
and β (from the global-batch ∇CE and ∇KD), the same updated weights (student,
adapters, BatchNorm statistics). The batch goes through `fit` as a tf.data
dataset, which the strategy splits: each replica sees only its 4 examples, so a
τ taken from each replica's own gradients differs from the one-device τ.
(`train_on_batch` hands every replica the whole batch, where that bug cannot
show.) Measured on this stack (TF 2.21 CPU): the losses (the Gram term
included), τ, β and both gradient norms agree to ≤ 1e-7 relative and the
updated weights to 1.2e-7 absolute, so the tolerance is 1e-5. With τ taken from
each replica's own gradients (put in by hand: each replica's local-mean
gradients into the β rule, the combined gradients averaged afterwards) τ
differed by 18% and β by 4%, the weights by 7e-3, and this test failed; the
old `train_on_batch` version of it passed with that bug.
Under mixed_float16 (loss scaling) the two runs agree to 6e-6 relative on the
logs and 3.8e-5 absolute on the weights (float16 round-off in a different
order); tolerance 1e-3 (a doubled update would differ by ~0.3).

The CPU must be split before TensorFlow's first op, so the comparison runs in
a fresh interpreter (this file, run as a script).
"""

import json
import os
import subprocess
import sys

import pytest

TOLERANCE = 1e-5
HALF_TOLERANCE = 1e-3


def _worker() -> dict:
    from kdkeras.training import strategy as strategies

    strategies.prepare_devices("mirrored:2")
    import warnings

    import keras
    import numpy as np

    from kdkeras import models
    from kdkeras.distill import Distiller, method_config

    def build(strategy, weights=None, jit_compile=False):
        with strategy.scope():
            keras.utils.set_random_seed(0)
            shape = dict(num_classes=4, input_shape=(8, 8, 3))
            student = models.get("resnet8", **shape)
            teachers = [models.get("resnet8", **shape) for _ in range(2)]
            d = Distiller(student, teachers, method_config("ours", always_adapt=True),
                          weight_decay=1e-3)
            if weights is not None:   # student, teachers, adapters, BatchNorm statistics
                d.set_weights(weights)
            d.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
                      jit_compile=jit_compile)
        return d

    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, size=(8, 8, 8, 3)).astype("float32")
    y = (np.arange(8) % 4).astype("int32")

    def one_step(d):
        """One step on the global batch of 8, split over the replicas by the strategy."""
        data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
        history = d.fit(data, epochs=1, verbose=0, shuffle=False)
        return {k: v[-1] for k, v in history.history.items()}

    single = build(strategies.get_strategy("default"))
    weights = single.get_weights()
    mirrored_strategy = strategies.get_strategy("mirrored:2")
    mirrored = build(mirrored_strategy, weights)
    logs_single = one_step(single)
    logs_mirrored = one_step(mirrored)
    weight_diff = max(float(np.max(np.abs(a - b)))
                      for a, b in zip(single.get_weights(), mirrored.get_weights()))
    moved = max(float(np.max(np.abs(a - b)))
                for a, b in zip(single.get_weights(), weights))

    # mixed_float16: the loss-scale optimizer's path (scale, unscale, β, rescale, apply).
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        half = [build(strategy) for strategy in (strategies.get_strategy("default"),
                                                 mirrored_strategy)]
        for d in half:
            d.set_weights(weights)
        half_logs = [one_step(d) for d in half]
        half_diff = max(float(np.max(np.abs(a - b)))
                        for a, b in zip(half[0].get_weights(), half[1].get_weights()))
        half_scale = [float(d.optimizer.dynamic_scale.numpy()) for d in half]
    finally:
        keras.mixed_precision.set_global_policy("float32")

    xla = build(mirrored_strategy, weights, jit_compile=True)
    try:
        xla.train_on_batch(x, y)
        xla_error = None
    except ValueError as err:
        xla_error = str(err)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resolved = strategies.resolve_jit_compile(mirrored_strategy, True)
    return {
        "replicas": mirrored_strategy.num_replicas_in_sync,
        "single": {k: float(v) for k, v in logs_single.items()},
        "mirrored": {k: float(v) for k, v in logs_mirrored.items()},
        "weight_diff": weight_diff,
        "moved": moved,
        "half": [{k: float(v) for k, v in logs.items()} for logs in half_logs],
        "half_weight_diff": half_diff,
        "half_loss_scale": half_scale,
        "xla_error": xla_error,
        "resolved_jit": resolved,
        "warnings": [str(w.message) for w in caught],
    }


@pytest.fixture(scope="module")
def result():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, __file__], capture_output=True, text=True,
                          timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_two_replicas_run_the_step(result):
    assert result["replicas"] == 2


def test_mirrored_step_equals_one_device_on_the_global_batch(result):
    single, mirrored = result["single"], result["mirrored"]
    assert set(single) == set(mirrored)
    for name in ("ce", "kl", "feature", "loss", "tau", "beta", "kd_scale", "ce_grad_norm",
                 "kd_grad_norm", "accuracy"):
        assert mirrored[name] == pytest.approx(single[name], rel=TOLERANCE, abs=TOLERANCE), name
    # β actually scaled this step, so it was exercised, not bypassed.
    assert single["kd_scale"] < 1.0 and single["kd_grad_norm"] < single["ce_grad_norm"]
    assert result["moved"] > 1e-3          # the step changed the weights ...
    assert result["weight_diff"] < TOLERANCE  # ... the same way on both strategies


def test_mixed_float16_step_with_loss_scaling_matches_too(result):
    single, mirrored = result["half"]
    for name in ("loss", "ce", "kl", "feature", "tau", "beta", "ce_grad_norm", "kd_grad_norm"):
        assert mirrored[name] == pytest.approx(single[name], rel=HALF_TOLERANCE), name
    assert result["half_weight_diff"] < HALF_TOLERANCE
    assert result["half_loss_scale"] == [2.0 ** 15] * 2   # finite step: not skipped, not halved


def test_xla_on_cpu_replicas_is_a_clear_error_or_turned_off(result):
    assert result["xla_error"] and "jit_compile=False" in result["xla_error"]
    assert result["resolved_jit"] is False
    assert any("MirroredStrategy on CPU devices" in w for w in result["warnings"])


if __name__ == "__main__":
    print(json.dumps(_worker()))
