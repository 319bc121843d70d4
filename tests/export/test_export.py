"""Export round trip: a smoke-trained student, exported, reloaded in a fresh process, agrees.

The student is a registry ResNet-8 (10 classes, 32×32) trained for one short
epoch on random data, so its BatchNorm statistics and weights are not the
initial ones. It is exported by `experiments/export.py` (on real CIFAR-10 JPEG
test images where the copy exists; by the library otherwise), and a fresh
interpreter that imports only TensorFlow and NumPy loads the SavedModel and
the TFLite files as `docs/deploy.md` shows. Float exports must give the Keras
logits to float32 round-off (measured ≤ 2e-6; tolerance 1e-4) and the same
top-1 on every input; the dynamic-range int8 model (int8 weights) must agree on
top-1 for most inputs and be much smaller.
"""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from helpers import CIFAR10_JPEG, run_script
from kdkeras import models

FLOAT_TOLERANCE = 1e-4

# What docs/deploy.md tells a user to run: TensorFlow and NumPy only.
_RELOAD = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf

    export_dir, inputs, out = sys.argv[1:4]
    x = np.load(inputs)

    serving = tf.saved_model.load(f"{export_dir}/saved_model")
    saved_model_logits = serving.serve(x).numpy()

    def tflite_logits(path, x):
        interpreter = tf.lite.Interpreter(model_path=path)
        inp = interpreter.get_input_details()[0]
        interpreter.resize_tensor_input(inp["index"], list(x.shape))
        interpreter.allocate_tensors()
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])

    np.savez(out, saved_model=saved_model_logits,
             tflite_float32=tflite_logits(f"{export_dir}/student.tflite", x),
             tflite_int8_dynamic=tflite_logits(f"{export_dir}/student_int8.tflite", x))
    print("kdkeras" in sys.modules, "keras" in sys.modules)
""")


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    keras.utils.set_random_seed(0)
    model = models.get("resnet8", num_classes=10, input_shape=(32, 32, 3),
                       input_normalization="cifar10")
    model.compile(optimizer=keras.optimizers.SGD(0.05),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    # Pixels in [0, 255]: the student normalises them itself, and so do its exports.
    model.fit(rng.uniform(0, 255, size=(64, 32, 32, 3)).astype("float32"), np.arange(64) % 10,
              batch_size=32, epochs=1, verbose=0)
    path = root / "student.keras"
    model.save(path)
    x = rng.uniform(0, 255, size=(16, 32, 32, 3)).astype("float32")
    np.save(root / "inputs.npy", x)
    return root, path, model, x


@pytest.fixture(scope="module")
def exported(student):
    root, path, _, x = student
    out = root / "export"
    if CIFAR10_JPEG.exists():
        proc = run_script("export.py", f"--model_path={path}", f"--out_dir={out}", "--int8",
                          f"--data_dir={CIFAR10_JPEG}", "--dataset=cifar10_jpeg",
                          "--check_images=100", "--latency_repeats=5")
        assert proc.returncode == 0, proc.stderr[-3000:]
        report = json.loads((out / "export_report.json").read_text())
    else:
        from kdkeras.export import export_student

        report = export_student(path, out, images=x, int8=True, latency_repeats=5)
    return out, report


def test_report_checks_every_format_on_test_images(exported):
    _, report = exported
    formats = report["formats"]
    assert list(formats) == ["keras", "saved_model", "tflite_float32", "tflite_int8_dynamic"]
    for fmt in ("saved_model", "tflite_float32"):
        assert formats[fmt]["top1_agreement"] == 1.0, fmt
        assert formats[fmt]["max_abs_diff"] < FLOAT_TOLERANCE, fmt
    assert formats["tflite_int8_dynamic"]["top1_agreement"] >= 0.9
    assert formats["tflite_int8_dynamic"]["size_bytes"] < formats["tflite_float32"]["size_bytes"] / 2
    for entry in formats.values():
        assert entry["size_bytes"] > 0
        assert entry["latency"]["batch_size"] == 1 and entry["latency"]["median_ms"] > 0
        assert entry["latency"]["device"].startswith(("CPU", "GPU"))
    if CIFAR10_JPEG.exists():
        assert report["check_images"] == 100 and report["check_dataset"] == "cifar10_jpeg"
        assert 0.0 <= formats["keras"]["accuracy"] <= 1.0
    # The exports apply the student's own statistics to pixel inputs.
    assert report["input_normalization"] == {"mean": list(models.STATISTICS["cifar10"][0]),
                                             "std": list(models.STATISTICS["cifar10"][1])}


def test_exports_reload_in_a_fresh_process_and_agree_with_keras(student, exported):
    root, _, model, x = student
    out, _ = exported
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-c", _RELOAD, str(out), str(root / "inputs.npy"),
                           str(root / "reloaded.npz")],
                          capture_output=True, text=True, timeout=300, env=env, cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[-2] == "False"   # kdkeras was never imported there
    reference = np.asarray(model(x, training=False))
    reloaded = np.load(root / "reloaded.npz")
    for fmt in ("saved_model", "tflite_float32"):
        np.testing.assert_allclose(reloaded[fmt], reference, atol=FLOAT_TOLERANCE, err_msg=fmt)
        assert (reloaded[fmt].argmax(-1) == reference.argmax(-1)).all(), fmt
    int8 = reloaded["tflite_int8_dynamic"]
    assert int8.shape == reference.shape
    assert np.mean(int8.argmax(-1) == reference.argmax(-1)) >= 0.75


def test_serving_model_drops_taps_and_casts_to_float32():
    from kdkeras.export import serving_model

    model = models.get("resnet8", num_classes=3, input_shape=(8, 8, 3))
    tapped = models.tapped_model(model)
    assert len(tapped.outputs) > 1
    serving = serving_model(tapped)
    assert len(serving.outputs) == 1 and serving.output_shape == (None, 3)
    assert serving_model(model) is model   # already logits-only
    x = np.random.default_rng(0).uniform(0, 255, size=(2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(serving(x)), np.asarray(model(x)), atol=1e-6)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        half = models.get("resnet8", num_classes=3, input_shape=(8, 8, 3))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert keras.backend.standardize_dtype(half(x).dtype) == "bfloat16"
    assert keras.backend.standardize_dtype(serving_model(half)(x).dtype) == "float32"
