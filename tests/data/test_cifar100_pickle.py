"""CIFAR-100 python release (pickles) read directly, from a folder or the .tar.gz."""

import os
import pickle

import numpy as np
import pytest

from kdkeras.data import ChecksumError, DataFormatError, load_cifar100_python, load_dataset
from kdkeras.data.checksums import KNOWN_MD5, md5_of


def _trust_generated_files(monkeypatch, fixture):
    for name in ("train", "test", "meta"):
        monkeypatch.setitem(KNOWN_MD5, f"cifar-100-python/{name}", md5_of(fixture["folder"] / name))
    monkeypatch.setitem(KNOWN_MD5, "cifar-100-python.tar.gz", md5_of(fixture["archive"]))


def _check_round_trip(splits, fixture):
    assert (splits.num_train, splits.num_test, splits.num_classes) == (10, 4, 100)
    assert splits.class_names[0] == "fine_00" and splits.class_names[99] == "fine_99"
    for split in ("train", "test"):
        raw = fixture[split]
        images, labels = map(np.stack, zip(*getattr(splits, split).as_numpy_iterator()))
        assert images.dtype == np.uint8 and labels.dtype == np.int32
        # The release keeps file order; CHW rows -> HWC images.
        np.testing.assert_array_equal(images, raw["data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        np.testing.assert_array_equal(labels, raw["fine"])
        # One pixel by hand: image 1, row 2, column 3, blue = byte 2*1024 + 2*32 + 3.
        assert images[1, 2, 3, 2] == raw["data"][1, 2 * 1024 + 2 * 32 + 3]
    np.testing.assert_array_equal(splits.test_labels, fixture["test"]["fine"])


def test_folder_release_round_trips(cifar100_python, monkeypatch):
    _trust_generated_files(monkeypatch, cifar100_python)
    splits = load_dataset("cifar100", data_dir=cifar100_python["dir"], download=False)
    _check_round_trip(splits, cifar100_python)
    assert "MD5 verified" in splits.source and "cifar-100-python" in splits.source


def test_data_dir_may_be_the_release_folder_or_hold_the_archive(cifar100_python, monkeypatch):
    _trust_generated_files(monkeypatch, cifar100_python)
    _check_round_trip(load_dataset("cifar100", data_dir=cifar100_python["folder"], download=False), cifar100_python)
    from_archive = load_dataset("cifar100", data_dir=cifar100_python["archive"].parent, download=False)
    _check_round_trip(from_archive, cifar100_python)
    assert str(cifar100_python["archive"]) in from_archive.source
    _check_round_trip(load_dataset("cifar100", data_dir=cifar100_python["archive"], download=False), cifar100_python)


def test_md5_mismatch_of_extracted_file(cifar100_python):
    with pytest.raises(ChecksumError) as info:
        load_cifar100_python(cifar100_python["folder"])
    message = str(info.value)
    assert str(cifar100_python["folder"] / "train") in message
    assert "16019d7e3df5f24257cddd939b257f8d" in message  # Official MD5 of `train`.
    assert md5_of(cifar100_python["folder"] / "train") in message


def test_md5_mismatch_of_archive(cifar100_python):
    with pytest.raises(ChecksumError, match="eb9058c3a382ffc7106e4002c42a8d85"):
        load_cifar100_python(cifar100_python["archive"])


def test_unverified_load_says_so(cifar100_python):
    splits = load_cifar100_python(cifar100_python["folder"], verify_checksums=False)
    _check_round_trip(splits, cifar100_python)
    assert "NOT verified" in splits.source


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickle_with_foreign_globals_is_refused(cifar100_python):
    (cifar100_python["folder"] / "meta").write_bytes(pickle.dumps({b"fine_label_names": _Exploit()}))
    with pytest.raises(DataFormatError, match="refusing to load global"):
        load_cifar100_python(cifar100_python["folder"], verify_checksums=False)


def test_wrong_shapes_are_reported(cifar100_python):
    bad = {b"data": np.zeros((3, 100), np.uint8), b"fine_labels": [0, 1, 2]}
    (cifar100_python["folder"] / "test").write_bytes(pickle.dumps(bad, protocol=2))
    with pytest.raises(DataFormatError, match=r"\(N, 3072\)"):
        load_cifar100_python(cifar100_python["folder"], verify_checksums=False)
