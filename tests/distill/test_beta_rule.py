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
