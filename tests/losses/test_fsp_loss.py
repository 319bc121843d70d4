"""FSP (Yim et al. 2017) in its four documented modes, against NumPy."""

import math

import numpy as np
import pytest

from kdkeras import losses

RNG = np.random.default_rng(3)
SHAPES = [(2, 4, 4, 3), (2, 2, 2, 5), (2, 1, 1, 4)]
T = [RNG.normal(size=s).astype("float32") for s in SHAPES]
S = [x + 0.5 * RNG.normal(size=x.shape).astype("float32") for x in T]


def np_gram(f1, f2, pool):
    oh, ow = min(f1.shape[1], f2.shape[1]), min(f1.shape[2], f2.shape[2])

    def down(x):
        b, h, w, c = x.shape  # integer ratios only here
        blocks = x.reshape(b, oh, h // oh, ow, w // ow, c)
        return blocks.mean(axis=(2, 4)) if pool == "avg" else blocks.max(axis=(2, 4))

    f1, f2 = down(f1), down(f2)
    return np.einsum("bhwi,bhwj->bij", f1, f2) / (oh * ow)


def np_fsp(t, s, mode):
    pool = {"paper": "avg", "torchdistill": "max", "repdistiller": "avg", "sseung0703": "max"}[mode]
    out = np.zeros(t[0].shape[0])
    for a in range(len(t) - 1):
        d = np_gram(t[a], t[a + 1], pool) - np_gram(s[a], s[a + 1], pool)  # (B, m, n)
        if mode == "paper":
            out += (d ** 2).sum(axis=(1, 2))
        elif mode == "torchdistill":
            out += np.sqrt((d ** 2).sum(axis=1)).sum(axis=-1)   # torch: .norm(dim=1).sum()
        elif mode == "repdistiller":
            out += (d ** 2).mean(axis=(1, 2))
        else:
            out += 1e-3 * 0.5 * (d ** 2).sum(axis=(1, 2))
    return out


@pytest.mark.parametrize("mode", sorted(losses.FSP_MODES))
def test_matches_numpy(mode):
    got = losses.fsp_loss(T, S, mode=mode)
    assert tuple(got.shape) == (2,)
    np.testing.assert_allclose(np.asarray(got), np_fsp(T, S, mode), rtol=1e-5)


def test_default_is_paper_mode_on_adjacent_pairs():
    np.testing.assert_allclose(np.asarray(losses.fsp_loss(T, S)), np_fsp(T, S, "paper"), rtol=1e-5)
    explicit = losses.fsp_loss(T, S, [(0, 1), (1, 2)])
    np.testing.assert_allclose(np.asarray(explicit), np_fsp(T, S, "paper"), rtol=1e-6)


def test_paper_mode_is_gram_loss_with_sum_on_cross_one_pairs():
    pairs = losses.cross_layer_pairs(range(3), 1)
    np.testing.assert_allclose(np.asarray(losses.fsp_loss(T, S)),
                               np.asarray(losses.gram_loss(T, S, pairs, reduction="sum")), rtol=1e-6)


def test_weight_and_pool_override_the_mode():
    got = losses.fsp_loss(T, S, mode="sseung0703", weight=1.0, pool="avg")
    np.testing.assert_allclose(np.asarray(got), 0.5 * np_fsp(T, S, "paper"), rtol=1e-5)


def test_takes_named_mappings():
    names = ["tap_stage1", "tap_stage2", "tap_stage3"]
    got = losses.fsp_loss(dict(zip(names, T)), dict(zip(names, S)))
    np.testing.assert_allclose(np.asarray(got), np_fsp(T, S, "paper"), rtol=1e-5)


@pytest.mark.parametrize("mode", sorted(losses.FSP_MODES))
def test_zero_and_finite_gradient_when_student_equals_teacher(mode, gradients):
    np.testing.assert_array_equal(np.asarray(losses.fsp_loss(T, T, mode=mode)), [0.0, 0.0])
    _, g_s = gradients(lambda t, s: losses.fsp_loss(t, s, mode=mode), T, T)
    for g in g_s:
        assert np.all(np.isfinite(g)) and not np.any(g)


@pytest.mark.parametrize("mode", sorted(losses.FSP_MODES))
def test_gradients_are_finite(mode, gradients):
    _, g_s = gradients(lambda t, s: losses.fsp_loss(t, s, mode=mode), T, S)
    for g in g_s:
        assert np.all(np.isfinite(g)) and np.any(g != 0)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="mode"):
        losses.fsp_loss(T, S, mode="code")
    with pytest.raises(ValueError, match="same number of taps"):
        losses.fsp_loss(T, S[:2])
    with pytest.raises(ValueError, match="pool"):
        losses.fsp_loss(T, S, pool="sum")
    with pytest.raises(ValueError, match="channel counts must match"):
        losses.fsp_loss(T, [S[0], S[1][..., :2], S[2]])
    assert math.isclose(losses.FSP_MODES["sseung0703"][1], 1e-3)
