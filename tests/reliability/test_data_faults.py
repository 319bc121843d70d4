"""Bad data: a missing or incomplete data directory, a truncated or corrupted file
(caught by the published checksums), ImageNet64 files of the wrong shape or label
range. Each is one clear `error:` line (exit 2), never a TensorFlow traceback."""

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from helpers import CIFAR10_JPEG

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))


def _cli_error(capsys, fn) -> str:
    import common

    with pytest.raises(SystemExit) as exit_info:
        common.run_cli(fn)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.fixture
def image_folder(tmp_path):
    """<root>/{train,test}/{cat,dog}/k.jpg, 3 small JPEGs a class and split."""
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for split in ("train", "test"):
        for label in ("cat", "dog"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for k in range(3):
                pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
                (folder / f"{k}.jpg").write_bytes(tf.io.encode_jpeg(pixels, quality=95).numpy())
    return root


def _published(root):
    from kdkeras.data.checksums import tree_sha256

    return {split: tree_sha256(root, split)[0] for split in ("train", "test")}


def test_truncated_image_fails_its_checksum(image_folder, capsys):
    from kdkeras.data import load_dataset

    published = _published(image_folder)
    splits = load_dataset("image_folder", image_folder, verify=published)
    assert (splits.num_train, splits.num_test) == (6, 6)
    victim = image_folder / "train" / "dog" / "1.jpg"
    victim.write_bytes(victim.read_bytes()[:-40])          # a copy cut short
    err = _cli_error(capsys, lambda: load_dataset("image_folder", image_folder, verify=published))
    assert f"SHA-256 tree hash mismatch for {image_folder}/train (6 files): expected " \
           f"{published['train']}, got " in err
    assert "A file is missing, truncated, changed or extra" in err


def test_file_that_is_no_image_is_a_data_error_naming_the_file(image_folder, capsys):
    from kdkeras.data import load_dataset

    victim = image_folder / "train" / "cat" / "0.jpg"
    victim.write_bytes(b"\x00" * 10)
    err = _cli_error(capsys, lambda: load_dataset("image_folder", image_folder))
    assert err.startswith(f"error: Image {victim} cannot be decoded (")
    assert "it is truncated or not a JPEG/PNG image. Replace or remove it." in err
    assert "verify" not in err          # no option the command line lacks


def test_image_of_another_size_is_named_with_its_size(image_folder, capsys):
    from kdkeras.data import load_dataset

    victim = image_folder / "test" / "dog" / "2.jpg"
    pixels = np.zeros((8, 12, 3), np.uint8)
    victim.write_bytes(tf.io.encode_jpeg(pixels).numpy())
    err = _cli_error(capsys, lambda: load_dataset("image_folder", image_folder))
    assert (f"error: Image {victim} is 8x12, but the first training image is 8x8: every image "
            "must have one size. Resize it, or load with image_size=(height, width)") in err


@pytest.mark.parametrize("problem", ["empty class folder", "link to an empty folder"])
def test_class_folder_without_images_is_refused(image_folder, tmp_path, capsys, problem):
    from kdkeras.data import load_dataset

    bird = image_folder / "train" / "bird"
    if problem == "empty class folder":
        bird.mkdir()
    else:
        (tmp_path / "nothing").mkdir()
        bird.symlink_to(tmp_path / "nothing")
    err = _cli_error(capsys, lambda: load_dataset("image_folder", image_folder))
    assert f"Class folder(s) ['{bird}'] hold no images (.jpg/.jpeg/.png)" in err


def test_a_class_missing_from_one_split_is_refused_or_allowed_with_a_warning(image_folder,
                                                                            capsys):
    from kdkeras.data import load_dataset

    shutil.move(image_folder / "test" / "dog", image_folder / "dog-test")
    err = _cli_error(capsys, lambda: load_dataset("image_folder", image_folder))
    assert (f"Class(es) ['dog'] of {image_folder} have training images but no 'test' images: "
            "test accuracy leaves them out. Add their test images, or load with "
            "allow_missing_classes=True") in err
    with pytest.warns(UserWarning, match=r"Class\(es\) \['dog'\] .* no 'test' images"):
        splits = load_dataset("image_folder", image_folder, allow_missing_classes=True)
    assert splits.num_classes == 2 and (splits.num_train, splits.num_test) == (6, 3)
    shutil.move(image_folder / "dog-test", image_folder / "test" / "dog")
    shutil.move(image_folder / "train" / "cat", image_folder / "cat-train")
    err = _cli_error(capsys, lambda: load_dataset("image_folder", image_folder))
    assert f"Class(es) ['cat'] of {image_folder} have no 'train' images" in err


@pytest.mark.skipif(not CIFAR10_JPEG.exists(), reason="CIFAR-10 (JPEG) copy not found")
def test_cifar10_jpeg_copy_matches_its_published_tree_hashes():
    """The hash is the README's `find <split> -type f | sort | xargs sha256sum | sha256sum`."""
    from kdkeras.data.checksums import KNOWN_TREE_SHA256, verify_tree

    verify_tree(CIFAR10_JPEG, KNOWN_TREE_SHA256["cifar10_jpeg"])


def test_verify_without_published_hashes_is_refused(image_folder, capsys):
    from kdkeras.data import load_dataset

    err = _cli_error(capsys, lambda: load_dataset("image_folder", image_folder, verify=True))
    assert "verify=True needs published hashes, and there are none for 'image_folder'" in err


def test_missing_and_incomplete_data_directories(tmp_path, image_folder, capsys):
    from kdkeras.data import load_dataset

    for name in ("image_folder", "imagenet64", "cifar10_jpeg"):
        err = _cli_error(capsys, lambda: load_dataset(name, tmp_path / "nowhere"))
        assert f"{tmp_path / 'nowhere'}" in err
        assert "does not exist" in err or "not found" in err
    for path in (image_folder / "test").rglob("*.jpg"):
        path.unlink()                                   # class folders left, but empty
    err = _cli_error(capsys, lambda: load_dataset("image_folder", image_folder))
    assert f"Image folder {image_folder} has no 'test' split with images" in err
    shutil.rmtree(image_folder / "test")
    err = _cli_error(capsys, lambda: load_dataset("image_folder", image_folder))
    assert f"Image folder {image_folder} has no 'test' split with images" in err
    published = {"train": "0" * 64, "test": "0" * 64}
    err = _cli_error(capsys, lambda: load_dataset("image_folder", image_folder, verify=published))
    assert "the data folder is incomplete" in err


def test_cifar100_pickles_that_are_not_the_release_fail_their_md5(tmp_path, capsys):
    from kdkeras.data import load_dataset

    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name in ("train", "test", "meta"):
        (folder / name).write_bytes(b"truncated")
    err = _cli_error(capsys, lambda: load_dataset("cifar100", tmp_path, download=False))
    assert f"MD5 mismatch for {folder}/" in err and "corrupt, truncated or not the original" in err


def _imagenet64(root, data, labels):
    root.mkdir(parents=True, exist_ok=True)
    np.savez(root / "train_data_batch_1.npz", data=data, labels=labels)
    np.savez(root / "val_data.npz", data=np.zeros((2, 12288), np.uint8), labels=np.array([1, 2]))


@pytest.mark.parametrize("data, labels, message", [
    (np.zeros((2, 3072), np.uint8), np.array([1, 2]),
     "'data' must be uint8 of shape (N, 12288) (3 x 64 x 64 CHW planes), got uint8 (2, 3072)"),
    (np.zeros((2, 12288), np.float32), np.array([1, 2]), "got float32 (2, 12288)"),
    (np.zeros((2, 12288), np.uint8), np.array([0, 1]),
     "labels must lie in 1..1000, got 0..1 (they look 0-based; the release stores 1..1000)"),
    (np.zeros((2, 12288), np.uint8), np.array([5, 1001]),
     "labels must lie in 1..1000, got 5..1001"),
    (np.zeros((2, 12288), np.uint8), np.array([1, 2, 3]),
     "labels have shape (3,), expected (2,)"),
], ids=["wrong image size", "wrong dtype", "0-based labels", "label above 1000", "label count"])
def test_imagenet64_file_of_wrong_shape_or_label_range(tmp_path, capsys, data, labels, message):
    from kdkeras.data import load_dataset

    _imagenet64(tmp_path / "in64", data, labels)
    err = _cli_error(capsys, lambda: load_dataset("imagenet64", tmp_path / "in64"))
    assert f"{tmp_path / 'in64' / 'train_data_batch_1.npz'}: " in err and message in err
