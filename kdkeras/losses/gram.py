"""Gram (FSP) matrices and the cross-layer Gram loss.

Chou, Chiu & Liao (2021), "Cross-layer knowledge distillation with KL
divergence and offline ensemble" (APSIPA TSIP). The knowledge passed from
teacher to student is the Gram matrix of two feature maps ("taps") of one
network; FSP (Yim et al. 2017) takes adjacent taps, the paper's P1 also takes
taps two, three (and, for MobileNet, four) apart.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any, Union

import keras
from keras import ops

POOLS = ("avg", "max")
# How `gram_distance` reduces one pair's squared Gram differences over its m×n entries.
REDUCTIONS = ("sum", "mean")
# How `gram_loss` reduces: an entry reduction summed over the pairs, or Eq. 4 as
# printed, the entries' sum averaged over the pairs ("mean_over_pairs").
GRAM_LOSS_REDUCTIONS = ("mean", "sum", "mean_over_pairs")

Tensor = Any
Features = Union[Mapping[str, Tensor], Sequence[Tensor]]
TapKey = Union[str, int]


# --- checks shared by the feature losses ----------------------------------------
def check_choice(name: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"`{name}` must be one of {list(allowed)}. Received: {name}={value!r}")


def check_rank(x: Tensor, ranks: Union[int, Sequence[int]], name: str) -> None:
    ranks = (ranks,) if isinstance(ranks, int) else tuple(ranks)
    if len(x.shape) not in ranks:
        want = ranks[0] if len(ranks) == 1 else f"one of {list(ranks)}"
        raise ValueError(f"`{name}` must have rank {want}. Received: {name}.shape={tuple(x.shape)}")


def check_same_batch(a: Tensor, b: Tensor, names: str) -> None:
    """Batch sizes must agree where both are known (they may be None when traced)."""
    if a.shape[0] is not None and b.shape[0] is not None and a.shape[0] != b.shape[0]:
        raise ValueError(f"{names} must have the same batch size. "
                         f"Received shapes {tuple(a.shape)} and {tuple(b.shape)}")


def as_float32(x: Tensor) -> Tensor:
    """Upcasts float16/bfloat16 maps: sums over h·w and m·n overflow half precision."""
    x = ops.convert_to_tensor(x)
    return x if keras.backend.standardize_dtype(x.dtype) in ("float32", "float64") else ops.cast(x, "float32")


# --- pooling ---------------------------------------------------------------------
def _bins(size_in: int, size_out: int) -> list[tuple[int, int]]:
    """Bin edges of adaptive pooling (as torch.nn.functional.adaptive_*_pool2d)."""
    return [(math.floor(i * size_in / size_out), math.ceil((i + 1) * size_in / size_out))
            for i in range(size_out)]


def adaptive_pool2d(x: Tensor, output_hw: tuple[int, int], pool: str = "avg") -> Tensor:
    """Pools an NHWC map to `output_hw` spatial size.

    An integer ratio uses a `pool_size == strides` window (what a 2×2 stride-2
    pool does between stages); any other ratio uses the bins of torch's
    `adaptive_{avg,max}_pool2d`, which agree with the window in the integer case.
    Shapes are static, so the op is XLA-friendly.
    """
    check_choice("pool", pool, POOLS)
    h, w = x.shape[1], x.shape[2]
    oh, ow = output_hw
    if (h, w) == (oh, ow):
        return x
    if h % oh == 0 and w % ow == 0:
        window = (h // oh, w // ow)
        fn = ops.average_pool if pool == "avg" else ops.max_pool
        return fn(x, pool_size=window, strides=window, padding="valid",
                  data_format="channels_last")
    reduce = ops.mean if pool == "avg" else ops.max
    # A rectangle's mean/max is the mean/max over rows of the mean/max over columns.
    x = ops.stack([reduce(x[:, a:b], axis=1) for a, b in _bins(h, oh)], axis=1)
    return ops.stack([reduce(x[:, :, a:b], axis=2) for a, b in _bins(w, ow)], axis=2)


def _spatial(x: Tensor, name: str) -> tuple[int, int]:
    h, w = x.shape[1], x.shape[2]
    if h is None or w is None:
        raise ValueError(f"`{name}` needs static height and width. Received: {name}.shape={tuple(x.shape)}")
    return h, w


# --- Gram matrix ------------------------------------------------------------------
def gram_matrix(f1: Tensor, f2: Tensor, pool: str = "avg") -> Tensor:
    """The Gram (FSP) matrix of two feature maps of one network.

    Chou, Chiu & Liao (2021), Eq. 1, which is the FSP matrix of Yim et al.
    (2017), Eq. 1:

        G[b, i, j] = Σ_{s,t} F1[b, s, t, i] · F2[b, s, t, j] / (h · w)

    Where the maps differ in height or width, each is pooled down to
    (min(h1, h2), min(w1, w2)) first, and h·w is that pooled size. The paper
    does not say how; `pool="avg"` (default) keeps every activation's
    contribution to the mean (as RepDistiller), `"max"` is what torchdistill
    (adaptive max-pool) and sseung0703/KD_methods_with_TF (2×2 max-pool) do.

    Args:
      f1: (B, h1, w1, m) feature map, the earlier tap.
      f2: (B, h2, w2, n) feature map, the later tap.
      pool: `"avg"` or `"max"`, how the larger map is pooled.

    Returns:
      (B, m, n) float32 (float64 if the inputs are) Gram matrices.
    """
    check_choice("pool", pool, POOLS)
    check_rank(f1, 4, "f1")
    check_rank(f2, 4, "f2")
    check_same_batch(f1, f2, "`f1` and `f2`")
    f1, f2 = as_float32(f1), as_float32(f2)
    (h1, w1), (h2, w2) = _spatial(f1, "f1"), _spatial(f2, "f2")
    if (h1, w1) != (h2, w2):
        target = (min(h1, h2), min(w1, w2))
        f1 = adaptive_pool2d(f1, target, pool)
        f2 = adaptive_pool2d(f2, target, pool)
    h, w = f1.shape[1], f1.shape[2]
    # One batched matmul over the flattened pixels: TensorFlow's einsum for this
    # contraction transposes whole maps first, and the K-teacher step spent
    # ~35% more on its Grams that way (benchmarks/README.md); TF folds this
    # transpose into the matmul.
    if f1.shape[-1] is None or f2.shape[-1] is None:
        return ops.einsum("bhwi,bhwj->bij", f1, f2) / float(h * w)
    m1 = ops.reshape(f1, (-1, h * w, f1.shape[-1]))
    m2 = ops.reshape(f2, (-1, h * w, f2.shape[-1]))
    return ops.matmul(ops.transpose(m1, (0, 2, 1)), m2) / float(h * w)


def gram_distance(g_teacher: Tensor, g_student: Tensor, reduction: str = "mean") -> Tensor:
    """Per-example squared distance of (B, m, n) Gram matrices, shape (B,).

    `"sum"`: ‖G_T − G_S‖²_F, the distance inside the paper's Eq. 4.
    `"mean"`: the same divided by m·n (mean of squares over the entries).
    """
    check_choice("reduction", reduction, REDUCTIONS)
    sq = ops.square(g_teacher - g_student)
    return ops.sum(sq, axis=(1, 2)) if reduction == "sum" else ops.mean(sq, axis=(1, 2))


# --- tap pairs ----------------------------------------------------------------------
def cross_layer_pairs(tap_names: Sequence[Hashable],
                      depth: Union[int, Iterable[int]]) -> list[tuple[Hashable, Hashable]]:
    """The tap pairs of the paper's P1, ordered by distance, then position.

    With taps t_1..t_n, "cross-d" pairs taps d apart: (t_i, t_{i+d}).
    Chou, Chiu & Liao (2021): cross-one (d = 1) is FSP's adjacent pairs;
    "P1 (cross three layers)" is the union of cross-one, two and three;
    MobileNet also uses cross-four.

    Args:
      tap_names: the taps in forward order (names, or positions such as
        `range(n)`); at least two, no repeats.
      depth: an int d means the union of distances 1..d (1 <= d <= n-1);
        a set/list/tuple of ints means exactly those distances (the ablation's
        single cross-two is `{2}`).

    Returns:
      [(earlier, later), ...]: all distance-1 pairs in forward order, then
      distance 2, and so on.

    Example: taps a, b, c, d with depth=2 give
      [(a, b), (b, c), (c, d), (a, c), (b, d)]; depth={3} gives [(a, d)].
    """
    names = list(tap_names)
    n = len(names)
    if n < 2:
        raise ValueError(f"`tap_names` needs at least 2 taps to form a pair. Received: tap_names={names}")
    if len(set(names)) != n:
        raise ValueError(f"`tap_names` has repeated entries. Received: tap_names={names}")

    def check(d: Any) -> int:
        if isinstance(d, bool) or not isinstance(d, int) or not 1 <= d <= n - 1:
            raise ValueError(f"`depth` must be an int in 1..{n - 1} for {n} taps, or a "
                             f"collection of such ints. Received: depth={depth!r}")
        return d

    if isinstance(depth, int) and not isinstance(depth, bool):
        distances = list(range(1, check(depth) + 1))
    elif isinstance(depth, (set, frozenset, list, tuple)) and len(depth) > 0:
        distances = sorted({check(d) for d in depth})
    else:
        raise ValueError(f"`depth` must be an int in 1..{n - 1} for {n} taps, or a non-empty "
                         f"set/list/tuple of such ints. Received: depth={depth!r}")
    return [(names[i], names[i + d]) for d in distances for i in range(n - d)]


def _lookup(feats: Features, key: TapKey, name: str) -> Tensor:
    """A tap by name (mapping) or by position (mapping or sequence)."""
    if isinstance(feats, Mapping):
        if isinstance(key, str):
            if key not in feats:
                raise ValueError(f"Tap {key!r} is not in `{name}` (keys {list(feats)}); "
                                 "pass integer positions when teacher and student tap names differ.")
            return feats[key]
        values = list(feats.values())
    else:
        if isinstance(key, str):
            raise ValueError(f"`{name}` is a sequence, so pairs must hold integer positions. "
                             f"Received tap {key!r}")
        values = list(feats)
    if isinstance(key, bool) or not isinstance(key, int) or not -len(values) <= key < len(values):
        raise ValueError(f"Tap position {key!r} is out of range for the {len(values)} maps of `{name}`")
    return values[key]


def pairwise_gram_loss(teacher_feats: Features, student_feats: Features,
                       pairs: Sequence[tuple[TapKey, TapKey]],
                       distance: Callable[[Tensor, Tensor], Tensor],
                       weight: Union[float, Sequence[float]], pool: str,
                       teacher_gradient: bool = False) -> Tensor:
    """Σ_pairs λ_p · distance(G_T,p, G_S,p), per example: the skeleton of Eq. 4 and FSP.

    The teacher's maps are wrapped in stop_gradient (a fixed target) unless
    `teacher_gradient`: trainable 1×1 adapters on the teacher's taps (the
    paper's Sec. V-B) learn through this loss, so the caller stops the raw
    teacher maps itself and passes the adapted ones with teacher_gradient=True.
    """
    check_choice("pool", pool, POOLS)
    pairs = list(pairs)
    if not pairs:
        raise ValueError("`pairs` is empty; use `cross_layer_pairs` to build it.")
    weights = [float(weight)] * len(pairs) if isinstance(weight, (int, float)) else list(weight)
    if len(weights) != len(pairs):
        raise ValueError(f"`weight` needs one value per pair ({len(pairs)}). Received: weight={weight!r}")
    total = None
    for (a, b), lam in zip(pairs, weights):
        t1, t2 = (_lookup(teacher_feats, k, "teacher_feats") for k in (a, b))
        if not teacher_gradient:
            t1, t2 = ops.stop_gradient(t1), ops.stop_gradient(t2)
        s1, s2 = (_lookup(student_feats, k, "student_feats") for k in (a, b))
        for t, s in ((t1, s1), (t2, s2)):
            check_rank(t, 4, "teacher_feats")
            check_rank(s, 4, "student_feats")
            check_same_batch(t, s, "Teacher and student maps")
        g_t = gram_matrix(t1, t2, pool)
        g_s = gram_matrix(s1, s2, pool)
        if tuple(g_t.shape[1:]) != tuple(g_s.shape[1:]):
            raise ValueError(
                f"Pair {(a, b)}: the teacher's Gram is {tuple(g_t.shape[1:])} but the student's is "
                f"{tuple(g_s.shape[1:])}; channel counts must match (add an adapter). "
                f"Teacher shapes {tuple(t1.shape)}, {tuple(t2.shape)}; "
                f"student shapes {tuple(s1.shape)}, {tuple(s2.shape)}")
        term = lam * distance(g_t, g_s)
        total = term if total is None else total + term
    return total


def pair_reduction(reduction: str, weight: Union[float, Sequence[float]],
                   num_pairs: int) -> tuple[str, Union[float, list]]:
    """`gram_loss`'s reduction as (entry reduction for `gram_distance`, per-pair λ).

    `"mean_over_pairs"` is the entries' sum with λ/B on every pair (B pairs):
    Eq. 4's 1/B. The other two sum the pairs at λ.
    """
    check_choice("reduction", reduction, GRAM_LOSS_REDUCTIONS)
    if reduction != "mean_over_pairs":
        return reduction, weight
    if num_pairs < 1:
        raise ValueError(f"`pairs` is empty; use `cross_layer_pairs` to build it. "
                         f"Received: num_pairs={num_pairs}")
    if isinstance(weight, (int, float)):
        return "sum", float(weight) / num_pairs
    return "sum", [float(w) / num_pairs for w in weight]


def gram_loss(teacher_feats: Features, student_feats: Features,
              pairs: Sequence[tuple[TapKey, TapKey]], *,
              reduction: str = "mean", weight: Union[float, Sequence[float]] = 1.0,
              pool: str = "avg", teacher_gradient: bool = False) -> Tensor:
    """The cross-layer Gram loss L_KD, per example.

    Chou, Chiu & Liao (2021), Eq. 4, with B the number of Gram matrices (the
    paper: "B represents the numbers of Gramian matrices"), i.e. of pairs:

        L_KD = (1/B) Σ_x Σ_{b=1..B} λ · ‖G_T,b(x) − G_S,b(x)‖²

    This returns, for each example x of the batch, shape (N,), the pair
    reduction chosen by `reduction`; the caller takes the batch mean, as it
    does for the cross-entropy, so L_KD keeps the paper's ratio to CE in the
    total loss (Eq. 9) whether the paper's Σ_x is read as a sum or a mean:
    both terms get the same batch reduction.

    `reduction`:
      - `"mean_over_pairs"`: Eq. 4 as printed: ‖·‖² summed over each Gram's
        m×n entries, then the mean over the B pairs (λ/B per pair).
      - `"sum"`: the same sums, added over the pairs: B times Eq. 4 (6× with
        four taps and cross-three), which also makes β's τ = ‖∇CE‖/‖∇KD‖ B
        times smaller.
      - `"mean"` (default of the `DistillConfig` presets): each pair's squares
        averaged over its m×n entries, added over the pairs, i.e.
        Σ_b ‖·‖²_b/(m_b·n_b), which is B·Eq. 4 with λ_b = λ/(m_b·n_b).

    Why the presets use `"mean"` with λ = 1: the entries' sum grows with the
    tap widths, so the same λ gives a term ~256 entries strong for 16×16 taps
    and ~4·10⁶ for 2048×2048 ones; pairs with wide taps swamp the others, and
    a K=3 cross-layer trial diverged to inf in 3 steps until the squares were
    averaged. `"mean"` divides each pair's sum by m·n: an O(1) error per entry
    costs O(1) whatever the widths (16..2048), every pair weighs the same and
    one λ serves every architecture. sseung0703/KD_methods_with_TF (FSP) uses
    ½·Σ·10⁻³ = Σ/2000, which equals `"mean"` at m·n = 2000, i.e. CIFAR ResNet
    widths (16–64); `"mean"` keeps that scale for wide networks too.

    Args:
      teacher_feats: the teacher's taps, a name→(N, h, w, c) mapping (e.g.
        `feature_taps` / `tapped_model` outputs as a dict) or a list in
        forward order. Wrapped in stop_gradient (a fixed target).
      student_feats: the student's taps, same form. A pair's Gram matrices
        must have the same m×n in teacher and student (spatial sizes may differ).
      pairs: (earlier, later) tap pairs from `cross_layer_pairs`: names into
        mappings, or integer positions (into lists, or mappings in order).
      reduction: `"mean"` (default), `"sum"` or `"mean_over_pairs"`, see above.
      weight: λ, one float for all pairs (the paper) or one per pair.
      pool: `"avg"` (default) or `"max"`, see `gram_matrix`.
      teacher_gradient: let gradients reach `teacher_feats` (for trainable
        adapters on the teacher side); default False, a fixed target.

    Returns:
      (N,) float32 per-example losses (float64 for float64 maps).
    """
    pairs = list(pairs)
    entry_reduction, weight = pair_reduction(reduction, weight, len(pairs))
    return pairwise_gram_loss(teacher_feats, student_feats, pairs,
                              lambda g_t, g_s: gram_distance(g_t, g_s, entry_reduction), weight,
                              pool, teacher_gradient)
