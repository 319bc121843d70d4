"""CIFAR-100 through tensorflow-datasets, offline, from a generated binary archive.

The tfds `cifar100` builder checks the archive against the SHA-256 it registers
for the real file; the tests patch that URL info on the builder class (restored
by monkeypatch) and never write into site-packages.
"""

import numpy as np
import pytest
import requests
from tensorflow_datasets.core.download import checksums as tfds_checksums
from tensorflow_datasets.image_classification import cifar as tfds_cifar

from kdkeras.data import ChecksumError, DataDownloadError, DataNotFoundError, load_dataset
from kdkeras.data import cifar100 as cifar100_module
from kdkeras.data.checksums import KNOWN_MD5, md5_of

URL = "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz"


def _no_network(host, *args, **kwargs):
    raise AssertionError(f"the offline path must not check the network ({host})")


def _patch_tfds_checksum(monkeypatch, archive):
    monkeypatch.setattr(
        tfds_cifar.Cifar100, "url_infos", {URL: tfds_checksums.compute_url_info(archive)}
    )


def _by_first_pixel(images, labels):
    """{R value of pixel (0, 0) -> (image, label)}; the fixture makes it unique."""
    return {int(img[0, 0, 0]): (img, int(lab)) for img, lab in zip(images, labels)}


def test_binary_archive_is_prepared_offline_by_tfds_and_round_trips(cifar100_binary, monkeypatch):
    monkeypatch.setitem(KNOWN_MD5, "cifar-100-binary.tar.gz", md5_of(cifar100_binary["archive"]))
    _patch_tfds_checksum(monkeypatch, cifar100_binary["archive"])
    monkeypatch.setattr(cifar100_module, "network_problem", _no_network)

    splits = load_dataset("cifar100", data_dir=cifar100_binary["dir"], download=False)

    assert (splits.name, splits.num_classes, splits.image_shape) == ("cifar100", 100, (32, 32, 3))
    assert (splits.num_train, splits.num_test) == (12, 5)
    assert splits.class_names[:2] == ("fine_00", "fine_01") and len(splits.class_names) == 100
    assert "prepared offline" in splits.source
    for split in ("train", "test"):
        ds = getattr(splits, split)
        assert ds.element_spec[0].dtype.name == "uint8" and ds.element_spec[1].dtype.name == "int32"
        images, labels = zip(*ds.as_numpy_iterator())
        got = _by_first_pixel(images, labels)
        raw = cifar100_binary[split]
        assert sorted(got) == list(range(len(raw["data"])))
        for i, row in enumerate(raw["data"]):
            image, label = got[i]
            # CHW planes -> HWC: channel c of pixel (y, x) is row[c * 1024 + y * 32 + x].
            np.testing.assert_array_equal(image, row.reshape(3, 32, 32).transpose(1, 2, 0))
            assert image[5, 7, 2] == row[2 * 1024 + 5 * 32 + 7]
            assert label == raw["fine"][i]
    np.testing.assert_array_equal(np.sort(splits.train_labels), np.sort(cifar100_binary["train"]["fine"]))

    # Second call: tfds's prepared copy is read, streaming (cache=False).
    again = load_dataset("cifar100", data_dir=cifar100_binary["dir"], download=False, cache=False)
    assert "prepared in" in again.source and again.train_labels is None
    assert (again.num_train, again.num_test) == (12, 5)
    images, labels = zip(*again.test.as_numpy_iterator())
    assert _by_first_pixel(images, labels).keys() == set(range(5))


def test_binary_archive_md5_mismatch_names_file_expected_and_got(cifar100_binary):
    with pytest.raises(ChecksumError) as info:
        load_dataset("cifar100", data_dir=cifar100_binary["dir"], download=False)
    message = str(info.value)
    assert "03b5dce01913d631647c71ecec9e9cb8" in message  # The official MD5.
    assert md5_of(cifar100_binary["archive"]) in message
    assert str(cifar100_binary["archive"]) in message
    assert "\n" not in message
    assert isinstance(info.value, ValueError)


def test_tfds_checksum_refusal_becomes_checksum_error(cifar100_binary, monkeypatch):
    # Our MD5 passes, tfds's registered SHA-256 (of the real archive) does not.
    monkeypatch.setitem(KNOWN_MD5, "cifar-100-binary.tar.gz", md5_of(cifar100_binary["archive"]))
    with pytest.raises(ChecksumError, match="tfds refused"):
        load_dataset("cifar100", data_dir=cifar100_binary["dir"], download=False)


def test_missing_data_without_download_says_where_to_put_files(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("cifar100", data_dir=missing, download=False)
    message = str(info.value)
    assert str(missing) in message
    assert "cifar-100-binary.tar.gz" in message and "cifar-100-python" in message
    assert "download=True" in message
    assert isinstance(info.value, FileNotFoundError)


def test_offline_download_fails_at_once_with_instructions(tmp_path, monkeypatch):
    monkeypatch.setattr(
        cifar100_module, "network_problem", lambda host, **kw: f"cannot reach {host}:443"
    )
    with pytest.raises(DataDownloadError) as info:
        load_dataset("cifar100", data_dir=tmp_path, download=True)
    message = str(info.value)
    assert "cannot reach www.cs.toronto.edu" in message and str(tmp_path) in message
    assert "cifar-100-binary.tar.gz" in message
    assert isinstance(info.value, ConnectionError)


def test_connection_error_inside_tfds_is_explained(tmp_path, monkeypatch):
    def fail(self, **kwargs):
        raise requests.exceptions.ConnectionError("Max retries exceeded (NameResolutionError)")

    monkeypatch.setattr(cifar100_module, "network_problem", lambda host, **kw: None)
    monkeypatch.setattr(tfds_cifar.Cifar100, "download_and_prepare", fail)
    with pytest.raises(DataDownloadError) as info:
        load_dataset("cifar100", data_dir=tmp_path, download=True)
    message = str(info.value)
    assert "ConnectionError" in message and "NameResolutionError" in message
    assert str(tmp_path) in message and "\n" not in message
    assert info.value.__suppress_context__  # Raised `from None`: no chained traceback.
