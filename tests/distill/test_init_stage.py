"""Two-stage FSP (`kdkeras.distill.init_stage`): the feature term alone, then the task alone.

Checked on the live epoch variable (compute_terms), through `Distiller.fit`
(the classifier, which FSP does not reach, stays put during the stage and
trains after it, a resumed run included), and on the JAX backend in a
second process.
"""

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from kdkeras import models
from kdkeras.distill import Distiller, init_stage, method_config

SHAPE = dict(num_classes=3, input_shape=(8, 8, 3))
REPO = Path(__file__).resolve().parents[2]


def _distiller(method):
    keras.utils.set_random_seed(0)
    return Distiller(models.get("resnet8", **SHAPE), [models.get("resnet8", **SHAPE)],
                     method_config(method), weight_decay=0.0)


def _data():
    rng = np.random.default_rng(0)
    return (rng.uniform(0, 255, (8, 8, 8, 3)).astype("float32"),
            rng.integers(0, 3, 8).astype("int32"))


@pytest.mark.parametrize("epochs, expected", [(200, 25), (20, 3), (8, 1), (1, 1), (240, 30)])
def test_stage_length_scales_with_the_run(epochs, expected):
    assert init_stage.init_stage_epochs(method_config("fsp"), epochs) == expected
    assert init_stage.init_stage_epochs(method_config("fsp_joint"), epochs) == 0


@pytest.mark.parametrize("method, kl_after", [("fsp", False), ("fsp_kl", True)])
def test_terms_switch_at_the_stage_boundary(method, kl_after):
    d = _distiller(method)
    init_stage.set_stage_epochs(d, 16)   # 2 epochs of FSP alone
    x, y = _data()
    student, teachers = d.student_outputs(x, training=False), d.teacher_outputs(x)
    for epoch, in_stage in ((0.0, True), (1.0, True), (2.0, False), (9.0, False)):
        d.epoch.assign(epoch)
        t = d.compute_terms(y, student, teachers)
        ce, kl, feature = (float(t[k]) for k in ("ce", "kl", "feature"))
        assert feature > 0 and ce > 0 and (kl > 0) == kl_after
        if in_stage:
            assert float(t["ce_side"]) == 0.0
            np.testing.assert_allclose(float(t["kd_side"]), feature, rtol=1e-6)
        else:
            np.testing.assert_allclose(float(t["ce_side"]), ce, rtol=1e-6)
            np.testing.assert_allclose(float(t["kd_side"]), kl, rtol=1e-6)


def test_joint_fsp_keeps_every_term_every_epoch():
    d = _distiller("fsp_joint")
    x, y = _data()
    t = d.compute_terms(y, d.student_outputs(x, training=False), d.teacher_outputs(x))
    np.testing.assert_allclose(float(t["ce_side"]), float(t["ce"]), rtol=1e-6)
    np.testing.assert_allclose(float(t["kd_side"]), float(t["feature"]), rtol=1e-6)


def test_a_stage_without_its_length_is_one_clear_error():
    d = _distiller("fsp")
    x, y = _data()
    with pytest.raises(ValueError, match="initialisation stage.*fit"):
        d.compute_terms(y, d.student_outputs(x), d.teacher_outputs(x))


def test_bad_fractions_are_refused():
    with pytest.raises(ValueError, match="init_stage_fraction must be in"):
        method_config("fsp", init_stage_fraction=1.0)
    with pytest.raises(ValueError, match="feature_loss=None"):
        method_config("hinton", init_stage_fraction=0.5)


def _fit_and_watch_classifier():
    """Logits-layer kernels after each of 3 epochs of fsp (stage = 1 of 8 → here 1 of 3)."""
    d = _distiller("fsp")
    d.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1))
    x, y = _data()
    head = d.student.get_layer("logits").kernel
    kernels = [np.array(head.numpy() if hasattr(head, "numpy") else head.value)]
    for epoch in range(3):   # one fit per epoch: as a resumed run, initial_epoch > 0
        d.fit(x, y, batch_size=4, epochs=epoch + 1, initial_epoch=epoch, verbose=0)
        kernels.append(np.array(keras.ops.convert_to_numpy(head.value)))
    return kernels, int(d._init_stage_epochs)


def check_two_stage_fit():
    kernels, length = _fit_and_watch_classifier()
    assert length == 1   # round(3/8) = 0, at least 1
    # FSP reaches the taps, not the classifier: with CE off and no weight decay
    # the classifier does not move in the stage, and trains after it.
    np.testing.assert_array_equal(kernels[1], kernels[0])
    assert np.abs(kernels[2] - kernels[1]).max() > 1e-4
    assert np.abs(kernels[3] - kernels[2]).max() > 1e-4


def test_two_stage_fit_on_this_backend():
    check_two_stage_fit()


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="runs JAX from the TF suite")
def test_two_stage_fit_on_jax():
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests" / "distill"),
                                           os.environ.get("PYTHONPATH", "")]))
    code = "import test_init_stage as t; t.check_two_stage_fit(); print('ok')"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=600, cwd=REPO)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]
