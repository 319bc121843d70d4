"""The backend-specific half of the Distiller's train step: taking two gradients.

Everything else (loss terms, the β rule, weight decay, metrics) is shared and
lives in `Distiller`/`beta`. Here each backend takes ∇CE and ∇KD its own way.
"""

from __future__ import annotations

import keras


def train_step(distiller, data):
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return _tf_train_step(distiller, data)
    raise NotImplementedError(
        f"The Distiller's train step supports the TensorFlow backend; got {backend!r}.")


def _tf_train_step(d, data):
    import tensorflow as tf

    x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
    # Teachers run in inference mode outside the tape: no activations are kept
    # for a backward pass that never reaches them.
    teacher_outputs = d.teacher_outputs(x)
    variables = d.trainable_variables
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    with tf.GradientTape(persistent=d.has_kd) as tape:
        student_outputs = d.student_outputs(x, training=True)
        terms = d.compute_terms(y, student_outputs, teacher_outputs)
        # Keras's optimizer sums gradients over replicas: scale to a global mean.
        ce_side = terms["ce_side"] / replicas
        kd_side = terms["kd_side"] / replicas
    ce_grads = tape.gradient(ce_side, variables)
    kd_grads = tape.gradient(kd_side, variables) if d.has_kd else [None] * len(variables)
    del tape
    grads, beta_logs = d.combine(ce_grads, kd_grads, variables)
    grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]
    d.optimizer.apply(grads, variables)
    return d.update_metrics(terms, y, beta_logs)
