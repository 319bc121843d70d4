"""Linear centred kernel alignment (CKA) between two networks' representations of one input set.

Kornblith, Norouzi, Lee & Hinton (2019), "Similarity of neural network
representations revisited", Eq. 5: for activations X (n × p) and Y (n × q)
of the same n examples, each column centred,

    CKA(X, Y) = ‖YᵀX‖²_F / (‖XᵀX‖_F · ‖YᵀY‖_F)
              = ⟨K, L⟩_F / (‖K‖_F · ‖L‖_F),    K = XXᵀ, L = YYᵀ.

It is 1 for representations equal up to an orthogonal map and an isotropic
scale (so a per-pixel rotation or permutation of a tap's channels leaves it
at 1), and invariant to neither a general linear map nor a per-channel scale.
The second form (n × n kernels) is used: a flattened ResNet tap has up to
32·32·16 = 16,384 features per example, more than the examples measured.
"""

from __future__ import annotations

from typing import Any

from keras import ops

from kdkeras.losses.gram import as_float32, check_same_batch

Tensor = Any


def linear_cka(x: Tensor, y: Tensor) -> Tensor:
    """Linear CKA of two representations of the same n examples, a scalar in [0, 1].

    Args:
      x: (n, ...) activations, flattened per example to (n, p).
      y: (n, ...) activations of the same examples, flattened to (n, q).

    Returns:
      () float32.
    """
    x, y = as_float32(x), as_float32(y)
    check_same_batch(x, y, "`x` and `y`")
    if len(x.shape) < 2 or len(y.shape) < 2 or x.shape[0] is None or x.shape[0] < 2:
        raise ValueError("linear_cka needs (n, ...) activations of n >= 2 examples. Received "
                         f"shapes {tuple(x.shape)} and {tuple(y.shape)}")
    x = ops.reshape(x, (x.shape[0], -1))
    y = ops.reshape(y, (y.shape[0], -1))
    x = x - ops.mean(x, axis=0, keepdims=True)
    y = y - ops.mean(y, axis=0, keepdims=True)
    k = ops.matmul(x, ops.transpose(x))
    l_ = ops.matmul(y, ops.transpose(y))
    return ops.sum(k * l_) / (ops.sqrt(ops.sum(k * k)) * ops.sqrt(ops.sum(l_ * l_)))
