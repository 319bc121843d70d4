"""CIFAR-100 (Krizhevsky 2009): 50,000 train / 10,000 test 32x32 RGB images, 100 classes.

Three ways in, tried in this order for a `data_dir`:

1. A dataset tfds has already prepared there (`<data_dir>/cifar100/<version>/`).
2. The **binary** release `<data_dir>/cifar-100-binary.tar.gz`: checked against its
   official MD5, then prepared **offline by tfds itself** (the `cifar100` builder
   reads exactly this archive; it is passed as the builder's `manual_dir`, and tfds
   checks the SHA-256 it registers for it). Later calls hit case 1.
3. The **python** release, `<data_dir>/cifar-100-python/{train,test,meta}` or
   `<data_dir>/cifar-100-python.tar.gz` (or `data_dir` is that folder): checked
   against the official MD5s, then the pickles are read directly. This release
   cannot go through tfds offline: the tfds builder parses only the binary
   record format and verifies the registered checksum of
   `cifar-100-binary.tar.gz`, which no archive re-packed from the pickles can
   have, and tfds has no builder for the python release.

Otherwise, with `download=True`, tfds downloads the binary release (needs internet).
`data_dir=None` means the default tfds data directory (`$TFDS_DATA_DIR` or
`~/tensorflow_datasets`).

Pickle safety: the pickles are unpickled only after their MD5 matched (unless
`verify_checksums=False`) and through an unpickler that refuses every global
but the few numpy constructors an array needs, so a tampered file cannot run code.
"""

from __future__ import annotations

import io
import os
import pickle
import socket
import tarfile
import urllib.request
from pathlib import Path

import numpy as np
import tensorflow as tf

from kdkeras.data.checksums import verify_md5
from kdkeras.data.errors import (
    ChecksumError,
    DataDownloadError,
    DataFormatError,
    DataNotFoundError,
)
from kdkeras.data.splits import DatasetSplits, normalization_stats, splits_from_arrays

TFDS_NAME = "cifar100"
BINARY_ARCHIVE = "cifar-100-binary.tar.gz"
PYTHON_ARCHIVE = "cifar-100-python.tar.gz"
PYTHON_FOLDER = "cifar-100-python"
DOWNLOAD_HOST = "www.cs.toronto.edu"
HOMEPAGE = "https://www.cs.toronto.edu/~kriz/cifar.html"
NUM_CLASSES = 100
IMAGE_SHAPE = (32, 32, 3)


def load_cifar100(
    data_dir: str | os.PathLike | None = None,
    *,
    download: bool = True,
    cache: bool = True,
    verify_checksums: bool = True,
) -> DatasetSplits:
    """Loads CIFAR-100 (fine labels) from `data_dir` or through tfds.

    Args:
      data_dir: folder holding a tfds-prepared copy, `cifar-100-binary.tar.gz`, or
        the python release (see the module docstring), or the path of one of the
        archives; tfds writes the prepared dataset (and, from the binary archive,
        an extracted copy under `downloads/`) here. `None`: the default tfds data
        directory.
      download: whether tfds may download the binary release when no local copy
        is found.
      cache: `True` reads each split once into memory (uint8, about 184 MB for
        both) so epochs do not decode PNGs again and `train_labels` are known;
        `False` streams from tfds's files (the python release is always read
        into memory).
      verify_checksums: check local archives/pickles against the official MD5s.
        tfds always checks its own SHA-256 of the binary archive.

    Returns:
      `DatasetSplits` named `"cifar100"`.

    Raises:
      DataNotFoundError: nothing usable in `data_dir` and `download=False`.
      DataDownloadError: the download failed (e.g. no network).
      ChecksumError: a local file is not the original release.
      DataFormatError: a pickle does not hold CIFAR-100 arrays.
    """
    import tensorflow_datasets as tfds

    if data_dir is None:
        data_dir = tfds.builder(TFDS_NAME).data_dir_root  # $TFDS_DATA_DIR or ~/tensorflow_datasets
    root = Path(data_dir).expanduser()
    if root.is_file() and root.name in (BINARY_ARCHIVE, PYTHON_ARCHIVE):
        root = root.parent  # The archive itself was given.
    if root.exists() and not root.is_dir():
        raise DataNotFoundError(f"CIFAR-100 data_dir {root} is a file, not a directory.")
    if root.is_dir():
        builder = tfds.builder(TFDS_NAME, data_dir=os.fspath(root))
        if builder.is_prepared():
            return _from_tfds(builder, cache, f"tfds {TFDS_NAME} prepared in {builder.data_dir}")
        binary = root / BINARY_ARCHIVE
        if binary.is_file():
            if verify_checksums:
                verify_md5(binary, BINARY_ARCHIVE)
            _download_and_prepare(builder, root, manual_dir=root)
            return _from_tfds(
                builder, cache, f"tfds {TFDS_NAME} prepared offline from {binary}"
            )
        python_release = find_python_release(root)
        if python_release is not None:
            return load_cifar100_python(python_release, verify_checksums=verify_checksums)
    if not download:
        raise DataNotFoundError(_not_found_message(root))
    builder = tfds.builder(TFDS_NAME, data_dir=os.fspath(root))
    _download_and_prepare(builder, root)
    return _from_tfds(builder, cache, f"tfds {TFDS_NAME} downloaded to {builder.data_dir}")


def _not_found_message(root: Path) -> str:
    return (
        f"CIFAR-100 not found in {root}: expected a tfds-prepared copy "
        f"({root / TFDS_NAME}/), {root / BINARY_ARCHIVE} (prepared offline by tfds), or "
        f"the python release ({root / PYTHON_FOLDER}/ or {root / PYTHON_ARCHIVE}). "
        f"Download with load_dataset('cifar100', data_dir='{root}', download=True) on a "
        f"machine with internet, or put an archive from {HOMEPAGE} in that folder."
    )


# --------------------------------------------------------------------------- tfds


def _download_and_prepare(builder, root: Path, manual_dir: Path | None = None) -> None:
    """Runs tfds's preparation, turning its failures into one-line `DataError`s."""
    import requests
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core.download.download_manager import NonMatchingChecksumError

    if manual_dir is None:
        problem = network_problem(DOWNLOAD_HOST)
        if problem:
            raise DataDownloadError(
                f"CIFAR-100 is not in {root} and cannot be downloaded ({problem}). "
                f"On a machine with internet run load_dataset('cifar100', data_dir=...) "
                f"and copy the folder here, or put {BINARY_ARCHIVE} or the python "
                f"release from {HOMEPAGE} in {root}."
            )
    config = tfds.download.DownloadConfig(
        manual_dir=os.fspath(manual_dir) if manual_dir is not None else None
    )
    try:
        builder.download_and_prepare(download_config=config)
    except NonMatchingChecksumError as e:
        raise ChecksumError(
            f"tfds refused {manual_dir or root}/{BINARY_ARCHIVE}: its SHA-256/size differ "
            f"from the registered ones ({_first_lines(e)})."
        ) from None
    except (requests.exceptions.RequestException, ConnectionError, TimeoutError, socket.error) as e:
        raise DataDownloadError(
            f"Downloading CIFAR-100 into {root} failed ({type(e).__name__}: {_first_lines(e)}). "
            f"Check the network, or put {BINARY_ARCHIVE} or the python release from "
            f"{HOMEPAGE} in {root} and load again (no network needed)."
        ) from None


def network_problem(host: str, port: int = 443, timeout: float = 5.0) -> str | None:
    """Returns why `host` cannot be reached, or `None` if it can (or a proxy is set).

    tfds retries a failed download with back-off for minutes before giving up;
    this quick check lets an offline machine fail at once with a useful message.
    """
    if urllib.request.getproxies():
        return None  # Only the proxy knows; let tfds try.
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as e:
        return f"cannot reach {host}:{port}: {e}"


def _first_lines(error: BaseException, max_chars: int = 300) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= max_chars else text[: max_chars - 3] + "..."


def _from_tfds(builder, cache: bool, source: str) -> DatasetSplits:
    import tensorflow_datasets as tfds

    class_names = tuple(builder.info.features["label"].names)
    if cache:
        arrays = {
            split: tfds.as_numpy(builder.as_dataset(split, batch_size=-1, as_supervised=True))
            for split in ("train", "test")
        }
        return splits_from_arrays(
            "cifar100",
            arrays["train"],
            arrays["test"],
            num_classes=NUM_CLASSES,
            class_names=class_names,
            source=source + " (cached in memory)",
            stats="cifar100",
        )

    def to_int32(image, label):
        return image, tf.cast(label, tf.int32)

    datasets = {
        split: builder.as_dataset(split, as_supervised=True, shuffle_files=False).map(to_int32)
        for split in ("train", "test")
    }
    mean, std = normalization_stats("cifar100")
    return DatasetSplits(
        name="cifar100",
        train=datasets["train"],
        test=datasets["test"],
        num_classes=NUM_CLASSES,
        image_shape=IMAGE_SHAPE,
        num_train=builder.info.splits["train"].num_examples,
        num_test=builder.info.splits["test"].num_examples,
        class_names=class_names,
        source=source,
        mean=mean,
        std=std,
    )


# ---------------------------------------------------------------- python release


def find_python_release(root: Path) -> Path | None:
    """Returns the python-release folder or archive under `root`, or `None`."""
    for folder in (root / PYTHON_FOLDER, root):
        if all((folder / f).is_file() for f in ("train", "test", "meta")):
            return folder
    if (root / PYTHON_ARCHIVE).is_file():
        return root / PYTHON_ARCHIVE
    return None


def load_cifar100_python(
    path: str | os.PathLike, *, verify_checksums: bool = True
) -> DatasetSplits:
    """Reads the python release (`cifar-100-python/` folder or `.tar.gz`) into memory.

    Each pickle is a dict with `data` (N x 3072 uint8, one image = 1024 R, then
    1024 G, then 1024 B values, rows top to bottom), `fine_labels`, `coarse_labels`;
    `meta` holds `fine_label_names`. The archive is read without extracting it.
    """
    path = Path(path)
    files = _read_python_release(path, verify_checksums)
    meta = _unpickle(files["meta"], path / "meta")
    names = tuple(_text(n) for n in _field(meta, "fine_label_names", path / "meta"))
    if len(names) != NUM_CLASSES:
        raise DataFormatError(
            f"{path / 'meta'} lists {len(names)} fine label names, expected {NUM_CLASSES}."
        )
    arrays = {
        split: _decode_split(_unpickle(files[split], path / split), path / split)
        for split in ("train", "test")
    }
    checked = "MD5 verified" if verify_checksums else "MD5 NOT verified"
    return splits_from_arrays(
        "cifar100",
        arrays["train"],
        arrays["test"],
        num_classes=NUM_CLASSES,
        class_names=names,
        source=f"cifar-100-python pickles read from {path} ({checked})",
        stats="cifar100",
    )


def _read_python_release(path: Path, verify: bool) -> dict[str, bytes]:
    """Returns the bytes of `train`, `test`, `meta` after checking their MD5s."""
    if path.is_dir():
        files = {name: (path / name).read_bytes() for name in ("train", "test", "meta")}
        if verify:
            for name, data in files.items():
                verify_md5(path / name, f"{PYTHON_FOLDER}/{name}", data=data)
        return files
    data = path.read_bytes()
    if verify:
        verify_md5(path, PYTHON_ARCHIVE, data=data)
    files = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        for name in ("train", "test", "meta"):
            member = f"{PYTHON_FOLDER}/{name}"
            try:
                files[name] = archive.extractfile(member).read()
            except (KeyError, AttributeError):
                raise DataFormatError(f"{path} has no member {member}.") from None
    return files


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts/lists/bytes and numpy arrays, and refuses any other global."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # How Python 3 writes bytes at protocol 2 (re-pickled copies).
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        if module.startswith("numpy.core") and hasattr(np, "_core"):
            module = "numpy._core" + module[len("numpy.core") :]  # numpy 2 renamed it.
        return super().find_class(module, name)


def _unpickle(data: bytes, path: Path) -> dict:
    try:
        # latin1 decodes the Python 2 `str` the release was written with.
        content = _NumpyOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a bad file.
        raise DataFormatError(f"{path} is not a CIFAR pickle ({type(e).__name__}: {e}).") from None
    if not isinstance(content, dict):
        raise DataFormatError(f"{path} holds a {type(content).__name__}, expected a dict.")
    return {_text(k): v for k, v in content.items()}


def _text(value) -> str:
    return value.decode("latin1") if isinstance(value, bytes) else str(value)


def _field(content: dict, key: str, path: Path):
    if key not in content:
        raise DataFormatError(f"{path} has no '{key}' entry; it has {sorted(content)}.")
    return content[key]


def _decode_split(content: dict, path: Path) -> tuple[np.ndarray, np.ndarray]:
    data = np.asarray(_field(content, "data", path))
    labels = np.asarray(_field(content, "fine_labels", path))
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataFormatError(
            f"{path}: 'data' must be uint8 of shape (N, 3072), got {data.dtype} {data.shape}."
        )
    if labels.shape != (len(data),):
        raise DataFormatError(
            f"{path}: {labels.shape} fine labels for {len(data)} images."
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise DataFormatError(
            f"{path}: fine labels must lie in [0, {NUM_CLASSES - 1}], "
            f"got [{labels.min()}, {labels.max()}]."
        )
    images = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return images, labels.astype(np.int32)
