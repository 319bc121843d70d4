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
"""

from __future__ import annotations

import hashlib
import os
from typing import BinaryIO

from kdkeras.data.errors import ChecksumError

# Archive name (or "<folder>/<file>" inside an archive) -> official MD5.
KNOWN_MD5: dict[str, str] = {
    "cifar-100-python.tar.gz": "eb9058c3a382ffc7106e4002c42a8d85",
    "cifar-100-binary.tar.gz": "03b5dce01913d631647c71ecec9e9cb8",
    "cifar-100-python/train": "16019d7e3df5f24257cddd939b257f8d",
    "cifar-100-python/test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
    "cifar-100-python/meta": "7973b15100ade9c7d40fb424638fde48",
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
