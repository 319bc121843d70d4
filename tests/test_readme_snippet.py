"""The README's Python snippet runs as written, top to bottom: extracted from README.md and
executed in a folder laid out like the repository's workplace (a tiny CIFAR-10-like image
folder at ../shared/data/cifar10-jpeg, the shipped teachers under results/)."""

import re

import keras
import numpy as np
import pytest
from PIL import Image

from helpers import REPO

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck")


def readme_python_block() -> str:
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 1, "the README should hold one Python snippet"
    return blocks[0]


def _write_image_folder(root, per_class):
    rng = np.random.default_rng(0)
    for split, n in per_class.items():
        for name in CLASSES:
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")


@pytest.mark.slow
def test_readme_snippet_runs_as_written(tmp_path, monkeypatch):
    code = readme_python_block()
    data_dir = re.search(r'data_dir = "([^"]+)"', code).group(1)
    work = tmp_path / "checkout"
    work.mkdir()
    (work / "results").symlink_to(REPO / "results")
    _write_image_folder((work / data_dir).resolve(), {"train": 2, "test": 1})
    monkeypatch.chdir(work)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    # It trained on 0-255 pixels without diverging and saved a student that takes pixels.
    history = namespace["distiller"].history.history
    assert len(history["loss"]) == 10 and all(np.isfinite(history["loss"]))
    assert "top5" in history and "val_top5" in history
    assert namespace["num_classes"] == 10 and len(namespace["teachers"]) == 3
    student = keras.saving.load_model(work / "student.keras")
    assert all(np.isfinite(w).all() for w in student.get_weights())
    pixels = np.full((1, 32, 32, 3), 255.0, np.float32)
    np.testing.assert_allclose(student.predict(pixels, verbose=0),
                               namespace["student"].predict(pixels, verbose=0), rtol=1e-5,
                               atol=1e-5)
