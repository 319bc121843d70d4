"""Picks the Distiller's train and test steps for the active Keras backend.

The backend-specific half of a step is only the taking of the two gradients
(∇CE and ∇KD); each backend's version sits in its own module beside this one
(`steps_tf`, `steps_jax`), imported on first use so that importing kdkeras
under one backend never imports the other's framework.

The two backends' trainers call the steps differently: TensorFlow's calls
`train_step(data)` and lets it assign the variables; JAX's calls the stateless
`train_step(state, data)` and expects `(logs, new_state)` back. Both forms are
accepted here; `train_step(data)` on JAX (a direct call, e.g. in a test or a
custom loop) runs the stateless step and assigns its result.
"""

from __future__ import annotations

import keras


def _backend() -> str:
    backend = keras.backend.backend()
    if backend not in ("tensorflow", "jax"):
        raise NotImplementedError(
            "The Distiller's steps support the TensorFlow and JAX backends. "
            f"Received: backend={backend!r}.")
    return backend


def train_step(distiller, *args):
    """`train_step(data)` (TensorFlow; direct calls on JAX) or `train_step(state, data)` (JAX)."""
    if _backend() == "tensorflow":
        from kdkeras.distill import steps_tf

        return steps_tf.train_step(distiller, *args)
    from kdkeras.distill import steps_jax

    if len(args) == 1:
        return steps_jax.stateful_train_step(distiller, *args)
    return steps_jax.train_step(distiller, *args)


def stateless_test_step(distiller, state, data):
    """`test_step(state, data)` as Keras's JAX trainer calls it."""
    if _backend() != "jax":
        raise ValueError("test_step(state, data) is the JAX trainer's form; "
                         f"the {keras.backend.backend()} backend calls test_step(data).")
    from kdkeras.distill import steps_jax

    return steps_jax.test_step(distiller, state, data)
