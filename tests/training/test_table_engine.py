"""The table engine's JAX suite, run from the TensorFlow suite in a process of its own.

Keras fixes its backend at import, so `test_table_engine_jax.py` (rows
together against apart, the engine's step against the Distiller's) runs in a
second pytest process with KERAS_BACKEND=jax, as `tests/distill/test_jax_backend.py`
does for the backend-neutral suites; the GPU script runs at smoke scale on CPU
with TensorFlow unimportable, as on the GPU machine.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

REPO = Path(__file__).resolve().parents[2]


def _env(**extra):
    return dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3",
                PYTHONUNBUFFERED="1", **extra)


def test_table_engine_suite_passes_under_jax():
    if keras.backend.backend() == "jax":
        pytest.skip("this process already runs on JAX")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q",
                           "tests/training/test_table_engine_jax.py"],
                          cwd=REPO, env=_env(), capture_output=True, text=True, timeout=1500)
    tail = proc.stdout[-3000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, tail
    assert " passed" in proc.stdout and "skipped" not in proc.stdout.splitlines()[-1], tail


def test_gpu_table_script_runs_a_smoke_table_without_tensorflow(tmp_path):
    """scripts/gpu/run_table.py on a tiny image-folder tar, TensorFlow blocked as on the GPU box."""
    import tarfile

    import numpy as np
    from PIL import Image

    root = tmp_path / "images"
    rng = np.random.default_rng(0)
    for split, count in (("train", 16), ("test", 4)):
        for c in ("cat", "dog"):
            folder = root / split / c
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    data = tmp_path / "images.tar.gz"
    with tarfile.open(data, "w:gz") as tar:
        tar.add(root, arcname="images")
    out = tmp_path / "out"
    args = ["scripts/gpu/run_table.py", f"--data={data}", f"--root={out}", "--table=14",
            "--rows=student,fsp-init0.125-k1", "--teacher_model=resnet8", "--train_teachers=2",
            "--epochs=2", "--teacher_epochs=1", "--batch_size=8", "--lr_decay_every=1"]
    code = ("import sys, runpy; sys.modules['tensorflow'] = None; "
            f"sys.argv = {args!r}; runpy.run_path({args[0]!r}, run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    rows = {r["row"]: r for r in summary["rows"]}
    assert set(rows) == {"student-s0", "fsp-init0.125-k1-s0"}
    assert [t["row"] for t in summary["teachers"]] == ["teacher-0", "teacher-1"]
    for row in rows.values():
        assert 0.0 <= row["test_accuracy"] <= 1.0
    assert summary["timing"]["training_compiles"] == 1
    results = json.loads((out / "runs" / "fsp-init0.125-k1-s0" / "results.json").read_text())
    assert len(results["history"]) == 2 and results["num_teachers"] == 1
    assert (out / "runs" / "fsp-init0.125-k1-s0" / "student.keras").exists()
