"""Backend-neutral gradient and XLA helpers for the loss tests (TensorFlow or JAX)."""

import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import ops

# The tests here import their shared NumPy reference (gram_reference.py) by name.
sys.path.insert(0, str(Path(__file__).parent))

BACKEND = keras.backend.backend()


def _gradients(fn, *args, jit=False):
    """d Σ fn(*args) / d args as NumPy (each arg an array or a list of them); jit: under XLA."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        def grad(xs):
            with tf.GradientTape() as tape:
                tape.watch(xs)
                y = ops.sum(fn(*xs))
            return tape.gradient(y, xs)

        if jit:
            grad = tf.function(grad, jit_compile=True)
        xs = tf.nest.map_structure(tf.convert_to_tensor, list(args))
        return [tf.nest.map_structure(np.asarray, g) for g in grad(xs)]
    if BACKEND == "jax":
        import jax
        import jax.numpy as jnp

        grad = jax.grad(lambda xs: jnp.sum(fn(*xs)))
        grads = (jax.jit(grad) if jit else grad)(list(args))
        return [jax.tree_util.tree_map(np.asarray, g) for g in grads]
    pytest.skip(f"gradient helper not written for the {BACKEND} backend")


def _compiled(fn):
    """fn compiled by XLA: tf.function(jit_compile=True) or jax.jit."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, jit_compile=True)
    if BACKEND == "jax":
        import jax

        return jax.jit(fn)
    pytest.skip(f"XLA helper not written for the {BACKEND} backend")


@pytest.fixture
def gradients():
    return _gradients


@pytest.fixture
def compiled():
    return _compiled
