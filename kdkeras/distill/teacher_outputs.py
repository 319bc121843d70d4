"""Teacher outputs computed ahead of the train step: TFLite int8 teachers in the input pipeline.

The teachers are frozen, so their outputs depend on the (augmented) batch
alone and can be computed before the step, by any runtime. `TFLiteTeacher`
converts a teacher (logits and, for the feature losses, its taps) to TFLite,
float32 or quantised to int8, and `attach_teacher_outputs` runs the K of them
in the input pipeline; the Distiller's TensorFlow step then takes the teacher
outputs from the batch instead of running the teachers:

    fast = [TFLiteTeacher(t, taps=True, quantization="int8", representative=images)
            for t in teachers]
    train_ds = attach_teacher_outputs(train_ds, fast)   # ({"image", "teacher_outputs"}, y)
    distiller = Distiller(student, teachers, method_config("ours"))   # the Keras teachers
    distiller.fit(train_ds, validation_data=test_ds, ...)               # stay for checks

`DistillConfig(teacher_precision="int8_ahead")` does the same inside
`Distiller.fit` (calibrated on the first 256 training images), which is how a
run of `experiments/distill.py --teacher_precision=int8_ahead` uses it.

The Keras teachers are still given to the Distiller (they define the taps,
adapters and checks) but are not run on such batches. Measured at batch 128 on
2 cores (CPU time): a ResNet-32 forward with its taps takes 238 ms in
TensorFlow float32, 219 ms in TFLite float32, 82 ms with dynamic-range int8 and
57 ms fully int8 (XNNPACK), with the teacher's top-1 unchanged and the logits
and taps within 1.4-3% (dynamic range) and 4-8% (int8) of their largest value.
What that does to the student's accuracy is measured by training, not here.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Optional, Sequence

import keras
import numpy as np

QUANTIZATIONS = (None, "dynamic_int8", "int8")


class TFLiteTeacher:
    """A frozen teacher as a TFLite model returning `[logits, tap_1, ..., tap_n]`.

    Args:
      teacher: a functional Keras model (its output: the logits).
      taps: True for the model's `tap_*` layers (what the feature losses read),
        a list of layer names, or False for the logits alone (Hinton KD).
      quantization: None (float32), `"dynamic_int8"` (int8 weights) or `"int8"`
        (int8 weights and activations, calibrated on `representative`).
      representative: float32 normalised training images for `"int8"` (a few
        hundred are enough).
      num_threads: TFLite interpreter threads (None: TFLite's default).
    """

    def __init__(self, teacher: keras.Model, *, taps=True, quantization: Optional[str] = "int8",
                 representative: Optional[np.ndarray] = None, num_threads: Optional[int] = None):
        import tensorflow as tf

        from kdkeras.models import tap_names, tapped_model

        if quantization not in QUANTIZATIONS:
            raise ValueError(f"quantization must be one of {QUANTIZATIONS}. "
                             f"Received: quantization={quantization!r}")
        if quantization == "int8" and representative is None:
            raise ValueError("quantization='int8' calibrates activations: pass representative="
                             "a few hundred normalised training images.")
        names = (tap_names(teacher) if taps is True else list(taps)) if taps else []
        view = tapped_model(teacher, names)
        self.output_shapes = [tuple(int(d) for d in o.shape[1:]) for o in view.outputs]
        self.input_shape = tuple(int(d) for d in view.inputs[0].shape[1:])
        with tempfile.TemporaryDirectory() as tmp:
            view.export(str(Path(tmp) / "saved_model"), format="tf_saved_model", verbose=False)
            converter = tf.lite.TFLiteConverter.from_saved_model(str(Path(tmp) / "saved_model"))
            if quantization:
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
            if quantization == "int8":
                images = np.asarray(representative, np.float32)
                converter.representative_dataset = lambda: ([images[i:i + 1]]
                                                            for i in range(len(images)))
            self.model_bytes = converter.convert()
        self.quantization, self.num_threads = quantization, num_threads
        self._runner = None

    def _signature_runner(self):
        if self._runner is None:
            from kdkeras.utils.tf_runtime import tflite_interpreter

            with tempfile.NamedTemporaryFile(suffix=".tflite", delete=False) as f:
                f.write(self.model_bytes)
            interpreter = tflite_interpreter(f.name, self.num_threads)
            Path(f.name).unlink()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                runner = interpreter.get_signature_runner()
            self._input = next(iter(runner.get_input_details()))
            self._runner = runner
        return self._runner

    def __call__(self, x: np.ndarray) -> list:
        """`[logits, tap_1, ...]` for a float32 batch, in the Keras model's output order."""
        outputs = self._signature_runner()(**{self._input: np.asarray(x, np.float32)})
        # Signature outputs are named output_0, output_1, ... in Keras order
        # (a plain interpreter's output tensors may come in another order).
        return [outputs[k] for k in sorted(outputs, key=lambda k: int(k.rsplit("_", 1)[-1]))]


def attach_teacher_outputs(ds, teachers: Sequence[TFLiteTeacher]):
    """Maps a batched `(x, y)` dataset to `({"image": x, "teacher_outputs": [...]}, y)`.

    `teacher_outputs[k]` is teacher k's `(logits, tap_1, ...)` (float32). The
    teachers run in a `tf.numpy_function`, one batch at a time (an interpreter
    is not thread-safe), ahead of the step through the pipeline's prefetch.
    """
    import tensorflow as tf

    teachers = list(teachers)
    shapes = [s for t in teachers for s in t.output_shapes]

    def run(x):
        return [np.asarray(o, np.float32) for t in teachers for o in t(x)]

    def add(x, y):
        flat = tf.numpy_function(run, [x], [tf.float32] * len(shapes), stateful=False)
        flat = [tf.ensure_shape(o, (None, *s)) for o, s in zip(flat, shapes)]
        # Tuples: tf.data packs a Python list of tensors into one tensor.
        out, i = [], 0
        for t in teachers:
            n = len(t.output_shapes)
            out.append(tuple(flat[i:i + n]))
            i += n
        return {"image": x, "teacher_outputs": tuple(out)}, y

    return ds.map(add, num_parallel_calls=1).prefetch(tf.data.AUTOTUNE)


def calibration_images(ds, count: int = 256,
                       purpose: str = "calibrate the int8 teachers on") -> np.ndarray:
    """The first `count` (or fewer, if the data ends) images of what `fit` gets.

    `ds` is a batched `(x, y)` dataset, a `keras.utils.PyDataset` or an array.
    They are the pipeline's own output (augmented), which is what int8
    calibration and the ensemble's teacher alignment (`ensemble.prepare_fit`)
    must see. `purpose` completes the error for empty data.
    """
    if hasattr(ds, "shape"):
        return np.asarray(ds[:count])
    if isinstance(ds, keras.utils.PyDataset):
        batches = (ds[i] for i in range(len(ds)))
    else:
        batches = iter(ds)
    images, have = [], 0
    for batch in batches:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        images.append(np.asarray(x, np.float32))
        have += len(images[-1])
        if have >= count:
            break
    if not images:
        raise ValueError(f"The training data is empty: no images to {purpose}.")
    return np.concatenate(images)[:count]


def int8_teachers(teachers: Sequence[keras.Model], taps: Sequence[Sequence[str]],
                  images: np.ndarray, num_threads: Optional[int] = None) -> list:
    """One fully int8 `TFLiteTeacher` per Keras teacher, returning its logits and `taps`."""
    return [TFLiteTeacher(t, taps=list(names) or False, quantization="int8",
                          representative=images, num_threads=num_threads)
            for t, names in zip(teachers, taps)]
