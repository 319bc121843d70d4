"""The β rule of Sec. 3.4 on hand-worked numbers."""

import math

import numpy as np
import pytest
from keras import ops

from kdkeras.distill.beta import beta_scale, combine_gradients, global_norm


def _np(x):
    return ops.convert_to_numpy(x)


def test_global_norm_is_l2_over_all_tensors():
    grads = [ops.convert_to_tensor([3.0, 0.0]), None, ops.convert_to_tensor([[4.0]])]
    assert _np(global_norm(grads)) == pytest.approx(5.0)


@pytest.mark.parametrize("epoch", [0, 1, 2, 7])
def test_paper_rule_scales_when_kd_gradient_is_smaller(epoch):
    # ‖∇CE‖ = 5, ‖∇KD‖ = 1: τ = 5, β = 1/(1+exp(−5+p)); applied because 1 < 5.
    scale, beta, tau = beta_scale(ops.convert_to_tensor(5.0), ops.convert_to_tensor(1.0),
                                  ops.convert_to_tensor(float(epoch)), "paper")
    expected = 1.0 / (1.0 + math.exp(-5.0 + epoch))
    assert _np(tau) == pytest.approx(5.0)
    assert _np(beta) == pytest.approx(expected, rel=1e-6)
    assert _np(scale) == pytest.approx(expected, rel=1e-6)


def test_paper_rule_leaves_a_larger_kd_gradient_alone():
    # ‖∇KD‖ = 10 > ‖∇CE‖ = 5: β is still reported (τ = 0.5) but not applied.
    scale, beta, tau = beta_scale(ops.convert_to_tensor(5.0), ops.convert_to_tensor(10.0),
                                  ops.convert_to_tensor(0.0), "paper")
    assert _np(tau) == pytest.approx(0.5)
    assert _np(beta) == pytest.approx(1 / (1 + math.exp(-0.5)), rel=1e-6)
    assert _np(scale) == 1.0


def test_inverted_rule_scales_only_the_larger_kd_gradient():
    small = beta_scale(ops.convert_to_tensor(5.0), ops.convert_to_tensor(1.0),
                       ops.convert_to_tensor(0.0), "inverted")[0]
    large = beta_scale(ops.convert_to_tensor(5.0), ops.convert_to_tensor(10.0),
                       ops.convert_to_tensor(3.0), "inverted")[0]
    assert _np(small) == 1.0
    assert _np(large) == pytest.approx(1 / (1 + math.exp(-0.5 + 3.0)), rel=1e-6)


def test_off_rule_never_scales():
    assert _np(beta_scale(ops.convert_to_tensor(5.0), ops.convert_to_tensor(1.0),
                          ops.convert_to_tensor(0.0), "off")[0]) == 1.0


def test_unknown_mode_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown beta_mode 'nope'.*paper"):
        beta_scale(1.0, 1.0, 0.0, "nope")


def test_combine_applies_ce_plus_beta_kd_plus_decay_per_variable():
    ce = [ops.convert_to_tensor([3.0, 0.0]), ops.convert_to_tensor([0.0, 4.0])]   # ‖∇CE‖ = 5
    kd = [ops.convert_to_tensor([0.6, 0.0]), ops.convert_to_tensor([0.0, 0.8])]   # ‖∇KD‖ = 1
    decay = [ops.convert_to_tensor([0.01, 0.01]), None]
    grads, logs = combine_gradients(ce, kd, decay, ops.convert_to_tensor(2.0), "paper")
    beta = 1 / (1 + math.exp(-5.0 + 2.0))
    np.testing.assert_allclose(_np(grads[0]), [3.0 + 0.01 + 0.6 * beta, 0.01], rtol=1e-6)
    np.testing.assert_allclose(_np(grads[1]), [0.0, 4.0 + 0.8 * beta], rtol=1e-6)
    assert _np(logs["beta"]) == pytest.approx(beta, rel=1e-6)
    assert _np(logs["ce_grad_norm"]) == pytest.approx(5.0)
    assert _np(logs["kd_grad_norm"]) == pytest.approx(1.0)


def test_norms_are_measured_on_the_student_but_adapters_get_the_same_scale():
    # Variable 2 is an adapter: it has no CE gradient and a huge KD gradient that
    # must not enter ‖∇KD‖ (the paper's norms are w.r.t. the student).
    ce = [ops.convert_to_tensor([5.0]), None]
    kd = [ops.convert_to_tensor([1.0]), ops.convert_to_tensor([100.0])]
    grads, logs = combine_gradients(ce, kd, [None, None], ops.convert_to_tensor(0.0), "paper",
                                    num_student_vars=1)
    beta = 1 / (1 + math.exp(-5.0))
    assert _np(logs["kd_grad_norm"]) == pytest.approx(1.0)
    np.testing.assert_allclose(_np(grads[1]), [100.0 * beta], rtol=1e-6)


def test_sseung0703_rule_clips_each_variable_to_its_ce_norm_times_sigmoid_epoch():
    ce = [ops.convert_to_tensor([3.0, 4.0]), ops.convert_to_tensor([1.0])]
    kd = [ops.convert_to_tensor([30.0, 40.0]), ops.convert_to_tensor([0.1])]
    epoch = 1.0
    grads, _ = combine_gradients(ce, kd, [None, None], ops.convert_to_tensor(epoch), "sseung0703")
    s = 1 / (1 + math.exp(-epoch))
    # Variable 0: ‖kd‖ = 50 > 5·s, so it is rescaled to norm 5·s.
    np.testing.assert_allclose(_np(grads[0]), [3.0 + 0.6 * 5 * s, 4.0 + 0.8 * 5 * s], rtol=1e-6)
    # Variable 1: ‖kd‖ = 0.1 < 1·s, untouched.
    np.testing.assert_allclose(_np(grads[1]), [1.1], rtol=1e-6)


def test_sseung0703_rule_leaves_a_variable_without_ce_gradient_unclipped():
    # The repro: variable 1 (an adapter) has no CE gradient. Its limit
    # used to be 0, which zeroed its KD gradient and froze it.
    ce = [ops.convert_to_tensor([1.0, 1.0]), None]
    kd = [ops.convert_to_tensor([1.0, 1.0]), ops.convert_to_tensor([1.0, 1.0, 1.0])]
    grads, _ = combine_gradients(ce, kd, [None, None], 5.0, "sseung0703", num_student_vars=1)
    np.testing.assert_allclose(_np(grads[1]), [1.0, 1.0, 1.0], rtol=1e-6)
    # The student variable is still clipped to ‖∇CE‖·sigmoid(5) = √2·s.
    s = 1 / (1 + math.exp(-5.0))
    np.testing.assert_allclose(_np(grads[0]), [1.0 + s, 1.0 + s], rtol=1e-6)


def test_sseung0703_rule_leaves_adapters_unclipped_when_their_ce_gradient_is_zeros():
    # On JAX a variable the CE loss does not reach gets a zero gradient, not None:
    # the adapters (past num_student_vars) must not be frozen there either.
    ce = [ops.convert_to_tensor([1.0, 1.0]), ops.convert_to_tensor([0.0, 0.0])]
    kd = [ops.convert_to_tensor([0.1, 0.0]), ops.convert_to_tensor([0.3, 0.4])]
    grads, _ = combine_gradients(ce, kd, [None, None], 0.0, "sseung0703", num_student_vars=1)
    np.testing.assert_allclose(_np(grads[1]), [0.3, 0.4], rtol=1e-6)
    np.testing.assert_allclose(_np(grads[0]), [1.1, 1.0], rtol=1e-6)


@pytest.mark.parametrize("seed", [0, 7])
def test_sseung0703_rule_matches_upstream_per_variable(seed):
    """KD_methods_with_TF op_util.py on the oracle's gradients (tests/losses/oracle/README.md)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "losses"))
    from oracle_fixtures import inputs, upstream

    x, ref = inputs(f"seed{seed}"), upstream(f"seed{seed}")["sseung0703_clip"]
    n = len(ref["variables"])
    tensors = {k: [ops.convert_to_tensor(x[f"clip_g_{k}_{i}"], "float32") for i in range(n)]
               for k in ("ce", "dist", "wd")}
    grads, _ = combine_gradients(tensors["ce"], tensors["dist"], tensors["wd"],
                                 ops.convert_to_tensor(float(x["clip_epoch"])), "sseung0703")
    clipped = [g - c - w for g, c, w in zip(grads, tensors["ce"], tensors["wd"])]
    for i, var in enumerate(ref["variables"]):
        assert np.asarray(var["shape"]).tolist() == list(grads[i].shape)
        np.testing.assert_allclose(_np(grads[i]).ravel(), var["g_total"], rtol=2e-6, atol=1e-7)
        np.testing.assert_allclose(_np(clipped[i]).ravel(), var["g_dist_clipped"],
                                   rtol=1e-5, atol=1e-7)
    # At least one variable of each seed is clipped and one is not (both branches run).
    assert {v["clipped"] for v in ref["variables"]} == {True, False}


def test_student_side_adapters_learn_under_sskd_svd():
    # The measurement: with the sseung0703 rule the student-side adapters
    # of sskd_svd got a zero update (weight decay 0). They must move now.
    import keras

    from kdkeras import models
    from kdkeras.distill import Distiller, method_config

    shape = dict(num_classes=3, input_shape=(8, 8, 3))
    keras.utils.set_random_seed(0)
    d = Distiller(models.get("resnet8", **shape), [models.get("resnet8", **shape)],
                  method_config("sskd_svd", always_adapt=True, adapter_side="student"),
                  weight_decay=0.0)
    d.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1))
    assert d.adapters
    before = [np.array(ops.convert_to_numpy(a.kernel)) for a in d.adapters]
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (4, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 3, 4).astype("int32")
    d.train_step((x, y))
    moved = [np.abs(ops.convert_to_numpy(a.kernel) - b).max() for a, b in zip(d.adapters, before)]
    assert min(moved) > 0, moved
