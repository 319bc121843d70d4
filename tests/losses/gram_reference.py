"""The Gram loss done by hand in NumPy: the reference for the Gram and K-teacher Gram tests."""

import math

import numpy as np


def np_pool(x, oh, ow, pool):
    """Adaptive pooling by explicit loops over torch's bins."""
    b, h, w, c = x.shape
    out = np.zeros((b, oh, ow, c), x.dtype)
    red = np.mean if pool == "avg" else np.max
    for i in range(oh):
        r0, r1 = math.floor(i * h / oh), math.ceil((i + 1) * h / oh)
        for j in range(ow):
            c0, c1 = math.floor(j * w / ow), math.ceil((j + 1) * w / ow)
            out[:, i, j] = red(x[:, r0:r1, c0:c1].reshape(b, -1, c), axis=1)
    return out


def np_gram(f1, f2, pool="avg"):
    oh, ow = min(f1.shape[1], f2.shape[1]), min(f1.shape[2], f2.shape[2])
    f1, f2 = np_pool(f1, oh, ow, pool), np_pool(f2, oh, ow, pool)
    g = np.zeros((f1.shape[0], f1.shape[3], f2.shape[3]))
    for b in range(f1.shape[0]):
        for i in range(f1.shape[3]):
            for j in range(f2.shape[3]):
                g[b, i, j] = np.sum(f1[b, :, :, i] * f2[b, :, :, j]) / (oh * ow)
    return g


def np_gram_loss(t, s, pairs, reduction, weights, pool):
    out = np.zeros(t[0].shape[0])
    for (a, b), lam in zip(pairs, weights):
        sq = (np_gram(t[a], t[b], pool) - np_gram(s[a], s[b], pool)) ** 2
        out += lam * (sq.sum(axis=(1, 2)) if reduction == "sum" else sq.mean(axis=(1, 2)))
    return out
