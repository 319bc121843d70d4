"""The Distiller runs BatchNorm-folded copies of its teachers: same targets, same saved state."""

import keras
import numpy as np
import pytest

from helpers import randomise_batch_norm
from kdkeras import models
from kdkeras.distill import Distiller, method_config

SHAPE = dict(num_classes=3, input_shape=(8, 8, 3))


def _teachers():
    keras.utils.set_random_seed(0)
    return [randomise_batch_norm(models.get("resnet8", **SHAPE), seed=k) for k in range(2)]


def _distiller(teachers, **kwargs):
    keras.utils.set_random_seed(1)
    config = method_config("ours", **kwargs.pop("config", {}))
    d = Distiller(models.get("resnet8", **SHAPE), teachers, config, **kwargs)
    d.compile(optimizer=keras.optimizers.SGD(0.05))
    return d


def _bn_layers(model):
    return [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]


def test_folded_teachers_give_the_unfolded_targets():
    teachers = _teachers()
    folded, plain = _distiller(teachers), _distiller(teachers, fold_teacher_batchnorm=False)
    assert folded.fold_teacher_batchnorm and not plain.fold_teacher_batchnorm
    assert all(not _bn_layers(v) for v in folded.teacher_views)
    assert all(_bn_layers(v) for v in plain.teacher_views)
    x = np.random.default_rng(3).normal(size=(4, 8, 8, 3)).astype("float32")
    for a_out, b_out in zip(plain.teacher_outputs(x), folded.teacher_outputs(x)):
        assert len(a_out) == len(b_out) == 5   # logits and 4 taps
        for a, b in zip(a_out, b_out):
            a, b = np.asarray(a), np.asarray(b)
            assert np.max(np.abs(a - b)) <= 1e-5 * np.max(np.abs(a)) + 1e-6
    # The teachers kept (and saved in checkpoints) are the ones given.
    assert all(a is b for a, b in zip(folded.teachers, teachers))
    assert [w.shape for w in folded.weights] == [w.shape for w in plain.weights]


def test_a_step_with_folded_teachers_matches_the_unfolded_step():
    teachers = _teachers()
    x = np.random.default_rng(4).normal(size=(8, 8, 8, 3)).astype("float32")
    y = (np.arange(8) % 3).astype("int32")
    logs = [_distiller(teachers, fold_teacher_batchnorm=f).train_on_batch(x, y, return_dict=True)
            for f in (True, False)]
    for key in ("ce", "kl", "feature", "tau", "beta"):
        assert float(logs[0][key]) == pytest.approx(float(logs[1][key]), rel=1e-4, abs=1e-6)


def test_bfloat16_teachers_are_folded_too():
    teachers = _teachers()
    d = _distiller(teachers, config=dict(teacher_precision="bfloat16"))
    assert d.fold_teacher_batchnorm and all(not _bn_layers(v) for v in d.teacher_views)
    x = np.random.default_rng(5).normal(size=(4, 8, 8, 3)).astype("float32")
    got = np.asarray(keras.ops.cast(d.teacher_outputs(x)[0][0], "float32"))
    want = np.asarray(teachers[0](x, training=False))
    assert np.max(np.abs(got - want)) <= 0.02 * np.max(np.abs(want)) + 1e-3


def test_int8_teachers_ahead_are_not_folded():
    d = _distiller(_teachers(), config=dict(teacher_precision="int8_ahead"))
    assert not d.fold_teacher_batchnorm
