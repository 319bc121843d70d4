"""Picks the Distiller's train step for the active Keras backend.

The backend-specific half of a step is only the taking of the two gradients
(∇CE and ∇KD); each backend's version sits in its own module beside this one.
"""

from __future__ import annotations

import keras


def train_step(distiller, data):
    backend = keras.backend.backend()
    if backend == "tensorflow":
        from kdkeras.distill import steps_tf

        return steps_tf.train_step(distiller, data)
    raise NotImplementedError(
        f"The Distiller's train step supports the TensorFlow backend; got {backend!r}.")
