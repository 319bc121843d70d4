"""TensorFlow runtime helpers that the Distiller's step and the layers above it share.

They sit below `kdkeras.distill` so that the distill package imports nothing
from `kdkeras.training` or `kdkeras.export` (which import it); TensorFlow is
imported inside the functions.
"""

from __future__ import annotations

import warnings
from typing import Optional


def tflite_interpreter(path, num_threads: Optional[int] = None):
    """A TFLite interpreter: `ai_edge_litert`'s where installed, else `tf.lite`'s."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings():  # "tf.lite.Interpreter is deprecated": still works in 2.21
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        return Interpreter(model_path=str(path), num_threads=num_threads)


def on_cpu_replicas(strategy) -> bool:
    """Whether `strategy` mirrors over more than one device and any of them is a CPU."""
    if strategy.num_replicas_in_sync < 2:
        return False
    devices = getattr(strategy.extended, "worker_devices", ())
    return any("CPU" in d.upper() for d in devices)
