"""Fixtures writing tiny copies of each dataset in its exact original file format."""

from __future__ import annotations

import io
import os
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

FINE_NAMES = [f"fine_{k:02d}" for k in range(100)]
COARSE_NAMES = [f"coarse_{k:02d}" for k in range(20)]


def _cifar_arrays(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """N random CIFAR-100 examples; every image differs (so it identifies its example)."""
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    data[:, 0] = np.arange(n)  # R of pixel (0, 0) is unique.
    return {
        "data": data,
        "fine": rng.integers(0, 100, n).astype(np.uint8),
        "coarse": rng.integers(0, 20, n).astype(np.uint8),
    }


def _add_file(archive: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    archive.addfile(info, io.BytesIO(payload))


@pytest.fixture
def cifar100_binary(tmp_path: Path) -> dict:
    """`<tmp>/cifar-100-binary.tar.gz` in the binary release's format, 12 train / 5 test.

    Records are <1 byte coarse label><1 byte fine label><3072 bytes R, G, B planes>.
    """
    rng = np.random.default_rng(100)
    splits = {"train": _cifar_arrays(rng, 12), "test": _cifar_arrays(rng, 5)}
    path = tmp_path / "cifar-100-binary.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for split, arrays in splits.items():
            records = np.concatenate(
                [arrays["coarse"][:, None], arrays["fine"][:, None], arrays["data"]], axis=1
            )
            _add_file(archive, f"cifar-100-binary/{split}.bin", records.tobytes())
        _add_file(archive, "cifar-100-binary/fine_label_names.txt", "\n".join(FINE_NAMES).encode() + b"\n")
        _add_file(archive, "cifar-100-binary/coarse_label_names.txt", "\n".join(COARSE_NAMES).encode() + b"\n")
    return {"dir": tmp_path, "archive": path, **splits}


class _Python2Pickler(pickle._Pickler):
    """Writes what Python 2's cPickle (protocol 2) wrote for the CIFAR release.

    Python 2 `str` (here: `bytes`) becomes SHORT_BINSTRING/BINSTRING, as in the
    original files (Python 3 would emit `_codecs.encode` calls instead), and numpy
    globals are named `numpy.core.*` as numpy 1 named them.
    """

    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes(self, obj):
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes

    def save_global(self, obj, name=None):
        module = obj.__module__.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())
        self.memoize(obj)


def _release_pickle(content: dict) -> bytes:
    buffer = io.BytesIO()
    _Python2Pickler(buffer, protocol=2).dump(content)
    return buffer.getvalue()


@pytest.fixture
def cifar100_python(tmp_path: Path) -> dict:
    """`<tmp>/cifar-100-python/{train,test,meta}` and `<tmp>/archive/cifar-100-python.tar.gz`."""
    rng = np.random.default_rng(101)
    splits = {"train": _cifar_arrays(rng, 10), "test": _cifar_arrays(rng, 4)}
    files = {
        split: _release_pickle(
            {
                b"filenames": [f"img_{i}.png".encode() for i in range(len(a["data"]))],
                b"batch_label": f"{split} batch 1 of 1".encode(),
                b"fine_labels": [int(v) for v in a["fine"]],
                b"coarse_labels": [int(v) for v in a["coarse"]],
                b"data": a["data"],
            }
        )
        for split, a in splits.items()
    }
    files["meta"] = _release_pickle(
        {
            b"fine_label_names": [n.encode() for n in FINE_NAMES],
            b"coarse_label_names": [n.encode() for n in COARSE_NAMES],
        }
    )
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name, payload in files.items():
        (folder / name).write_bytes(payload)
    archive_dir = tmp_path / "archive"
    archive_dir.mkdir()
    archive = archive_dir / "cifar-100-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, payload in files.items():
            _add_file(tar, f"cifar-100-python/{name}", payload)
    return {"dir": tmp_path, "folder": folder, "archive": archive, **splits}


def write_imagenet_npz(path: Path, data: np.ndarray, labels: np.ndarray, *, mean: bool = True) -> None:
    """Writes one file in the Imagenet64 npz format (`data`, `labels`, optional `mean`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"data": data, "labels": labels}
    if mean:
        arrays["mean"] = data.mean(axis=0)
    np.savez(path, **arrays)


@pytest.fixture
def imagenet64_dir(tmp_path: Path) -> dict:
    """The release's directory layout: train batches 1, 2, 10 (3 + 2 + 1 images), val (4)."""
    rng = np.random.default_rng(64)
    root = tmp_path / "imagenet64"
    files = {}
    for number, n in ((1, 3), (2, 2), (10, 1)):
        data = rng.integers(0, 256, (n, 12288), dtype=np.uint8)
        labels = rng.integers(1, 1001, n)
        files[number] = (data, labels)
        write_imagenet_npz(root / "Imagenet64_train_npz" / f"train_data_batch_{number}.npz", data, labels)
    val = (rng.integers(0, 256, (4, 12288), dtype=np.uint8), np.array([1, 1000, 500, 2]))
    write_imagenet_npz(root / "Imagenet64_val_npz" / "val_data.npz", *val, mean=False)
    return {"dir": root, "train": files, "val": val}


@pytest.fixture
def small_image_folder(tmp_path: Path) -> dict:
    """`<tmp>/folder/{train,test}/<class>/<i>.png`: 3 classes, 4 train / 2 test each, 8x8 RGB."""
    from PIL import Image

    rng = np.random.default_rng(7)
    root = tmp_path / "folder"
    images = {}
    for split, per_class in (("train", 4), ("test", 2)):
        for label, cls in enumerate(["cat", "ant", "bee"]):
            for i in range(per_class):
                pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
                path = root / split / cls / f"{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels).save(path)
                images[(split, pixels.tobytes())] = cls
    return {"dir": root, "images": images}


@pytest.fixture
def npz_writer():
    """`write_imagenet_npz(path, data, labels, mean=True)` for tests that build odd files."""
    return write_imagenet_npz
