"""Export a trained student for deployment: SavedModel and TFLite, checked against Keras.

A distilled student (`student.keras`) is a functional model whose only output is
the logits; `serving_model` makes sure of that (no feature taps, float32
logits), and the exports are built from it:

* **SavedModel** (`model.export`): endpoint `serve`, loads with
  `tf.saved_model.load` in any TensorFlow, no kdkeras or Keras needed.
* **TFLite float32** (`TFLiteConverter.from_saved_model` on that SavedModel).
* **TFLite dynamic-range int8** (optional): the same converter with
  `Optimize.DEFAULT` and no representative data: weights stored as int8 (about
  4× smaller), activations float, so no calibration set is needed.

`check_export` compares an export's logits with the Keras model's on the same
inputs (top-1 agreement and max |Δlogit|), and `time_calls` gives the median
batch-1 latency. `export_student` does all of it and returns the report that
`experiments/export.py` writes. Loading each export in a fresh process is shown
in `docs/deploy.md`.

Inputs are pixels: float32 NHWC values in [0, 255] (uint8 cast to float32).
A kdkeras student normalises them in its first layer
(`kdkeras.models.InputNormalization`, `(x/255 − mean)/std` with the statistics
it was trained with), and that layer is part of every export, so no
deployment needs to know the statistics; the report records them
(`input_normalization`).
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Callable, Optional

import keras
import numpy as np

from kdkeras.utils.tf_runtime import tflite_interpreter  # noqa: F401 - re-exported

FORMATS = ("keras", "saved_model", "tflite_float32", "tflite_int8_dynamic")


def serving_model(model: keras.Model) -> keras.Model:
    """The logits-only inference model: the first output, as float32; same weights.

    A registry model already has the logits as its only output; a tapped view
    (`tapped_model`, `[logits, tap_1, ...]`) is cut to its logits, and a model
    computing in float16/bfloat16 (mixed precision) gets a float32 cast.
    """
    logits = model.outputs[0]
    if keras.backend.standardize_dtype(logits.dtype) != "float32":
        logits = keras.layers.Activation("linear", dtype="float32", name="logits_float32")(logits)
    if len(model.outputs) == 1 and logits is model.outputs[0]:
        return model
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, logits, name=f"{model.name}_serving")


def load_student(path) -> keras.Model:
    """Loads a `.keras` file, with an error that says what is wrong with it.

    Keras answers a corrupt or truncated `.keras` file with "File not found"
    (issue 21); this says that the file is there and what it is not.
    """
    import zipfile

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Model file {path} does not exist.")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"Model file {path} is not a .keras archive (a .keras file is a zip; "
                         f"this one is corrupt, truncated or of another format, "
                         f"{path.stat().st_size} bytes). Pass the student.keras a run wrote.")
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as err:  # noqa: BLE001 - any failure to read is the same user error
        first = str(err).strip().splitlines()[0][:300] if str(err).strip() else ""
        raise ValueError(f"Model file {path} could not be read as a Keras model "
                         f"({type(err).__name__}: {first}).") from None


def check_classes(model: keras.Model, num_classes: int, dataset: str) -> None:
    """The check images must come from data with the model's classes."""
    n = int(model.outputs[0].shape[-1])
    if n != num_classes:
        raise ValueError(
            f"The model predicts {n} classes but the check dataset {dataset!r} has "
            f"{num_classes}: its accuracy there would mean nothing. Pass --dataset/--data_dir "
            "of the data the model was trained on.")


def export_saved_model(model: keras.Model, path) -> Path:
    """Writes the logits-only SavedModel (endpoint `serve`) to the folder `path`."""
    path = Path(path)
    serving_model(model).export(str(path), format="tf_saved_model", verbose=False)
    return path


def export_tflite(saved_model_dir, path, *, quantization: Optional[str] = None) -> Path:
    """Converts a SavedModel to a `.tflite` file.

    Args:
      saved_model_dir: a folder from `export_saved_model`.
      path: the `.tflite` file to write.
      quantization: None (float32) or `"dynamic_int8"`: post-training
        dynamic-range quantisation (int8 weights, float activations).
    """
    import tensorflow as tf

    if quantization not in (None, "dynamic_int8"):
        raise ValueError("quantization must be None or 'dynamic_int8'. "
                         f"Received: quantization={quantization!r}")
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    if quantization == "dynamic_int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    path = Path(path)
    path.write_bytes(converter.convert())
    return path


class TFLiteRunner:
    """Calls a `.tflite` model on a batch of inputs (resizing its batch dimension as needed)."""

    def __init__(self, path, num_threads: Optional[int] = None):
        self.interpreter = tflite_interpreter(path, num_threads)
        self.interpreter.allocate_tensors()
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        self._batch = int(self._input["shape"][0])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        if x.shape[0] != self._batch:
            self.interpreter.resize_tensor_input(self._input["index"], list(x.shape))
            self.interpreter.allocate_tensors()
            self._batch = x.shape[0]
        self.interpreter.set_tensor(self._input["index"], x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._output["index"])


class SavedModelRunner:
    """Calls a SavedModel's `serve` endpoint."""

    def __init__(self, path):
        import tensorflow as tf

        self.loaded = tf.saved_model.load(str(path))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.loaded.serve(np.asarray(x, np.float32)))


def runner(fmt: str, path, num_threads: Optional[int] = None) -> Callable[[np.ndarray], np.ndarray]:
    """A function from a float32 batch to logits for an exported file of format `fmt`."""
    if fmt == "keras":
        model = serving_model(keras.saving.load_model(path, compile=False))
        return lambda x: np.asarray(model(np.asarray(x, np.float32), training=False))
    if fmt == "saved_model":
        return SavedModelRunner(path)
    if fmt in ("tflite_float32", "tflite_int8_dynamic"):
        return TFLiteRunner(path, num_threads)
    raise ValueError(f"Unknown format {fmt!r}. Valid formats: {', '.join(FORMATS)}.")


def predict_in_batches(fn: Callable, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    return np.concatenate([fn(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def compare_logits(reference: np.ndarray, logits: np.ndarray) -> dict:
    """Top-1 agreement (fraction of inputs with the same argmax) and max |Δlogit|."""
    reference, logits = np.asarray(reference, np.float32), np.asarray(logits, np.float32)
    if reference.shape != logits.shape:
        raise ValueError(f"Logit shapes differ: {reference.shape} vs {logits.shape}.")
    return {
        "top1_agreement": float(np.mean(reference.argmax(-1) == logits.argmax(-1))),
        "max_abs_diff": float(np.max(np.abs(reference - logits))),
    }


def time_calls(fn: Callable, x: np.ndarray, repeats: int = 50, warmup: int = 5) -> dict:
    """Median and p90 wall time of `fn(x)` in ms, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(x)
        times.append(1000.0 * (time.perf_counter() - start))
    return {"median_ms": float(statistics.median(times)),
            "p90_ms": float(np.percentile(times, 90)), "batch_size": int(x.shape[0]),
            "repeats": repeats}


def size_bytes(path) -> int:
    """A file's size, or the total size of the files under a folder."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def export_student(model_path, out_dir, *, images: np.ndarray, labels: Optional[np.ndarray] = None,
                   int8: bool = False, latency_repeats: int = 50,
                   num_threads: Optional[int] = None) -> dict:
    """Exports a saved student to SavedModel and TFLite and checks each export.

    Args:
      model_path: the student's `.keras` file.
      out_dir: where `saved_model/`, `student.tflite` (and `student_int8.tflite`) go.
      images: float32 (N, H, W, C) test images, pixels in [0, 255], for the agreement check.
      labels: their labels, if known (each format's accuracy is then reported).
      int8: also write the dynamic-range int8 TFLite model.
      latency_repeats: timed batch-1 calls per format.
      num_threads: TFLite interpreter threads (None: TFLite's default).

    Returns:
      The report: per format its path, size, agreement with Keras, (accuracy)
      and batch-1 latency, with the device each ran on.
    """
    from kdkeras.models import input_statistics
    from kdkeras.training.provenance import cpu_name, device_name

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = serving_model(load_student(model_path))
    paths = {"keras": Path(model_path), "saved_model": export_saved_model(model, out_dir / "saved_model")}
    paths["tflite_float32"] = export_tflite(paths["saved_model"], out_dir / "student.tflite")
    if int8:
        paths["tflite_int8_dynamic"] = export_tflite(paths["saved_model"],
                                                     out_dir / "student_int8.tflite",
                                                     quantization="dynamic_int8")
    images = np.asarray(images, np.float32)
    reference = predict_in_batches(lambda x: np.asarray(model(x, training=False)), images)
    one = images[:1]
    keras_device, cpu = device_name(), f"CPU: {cpu_name()} ({os.cpu_count()} cores)"
    report = {"model": model.name, "source": str(model_path),
              "input_shape": list(model.inputs[0].shape[1:]),
              # What every export applies to its pixel inputs (None: it takes normalised inputs).
              "input_normalization": input_statistics(model),
              "num_classes": int(model.outputs[0].shape[-1]),
              "check_images": int(len(images)), "formats": {}}
    for fmt, path in paths.items():
        if fmt == "keras":
            logits = reference
            # Keras's own compiled inference path (`predict_on_batch`).
            latency = {**time_calls(model.predict_on_batch, one, repeats=latency_repeats),
                       "device": keras_device, "runtime": "keras predict_on_batch"}
        else:
            fn = runner(fmt, path, num_threads)
            logits = predict_in_batches(fn, images)
            tflite = fmt.startswith("tflite")
            latency = {**time_calls(fn, one, repeats=latency_repeats),
                       "device": cpu if tflite else keras_device,
                       "runtime": (f"TFLite interpreter, XNNPACK (threads={num_threads})" if tflite
                                   else "tf.saved_model.load(...).serve")}
        entry = {"path": str(path), "size_bytes": size_bytes(path), **compare_logits(reference, logits)}
        if labels is not None:
            entry["accuracy"] = float(np.mean(logits.argmax(-1) == np.asarray(labels)))
        entry["latency"] = latency
        report["formats"][fmt] = entry
    return report
