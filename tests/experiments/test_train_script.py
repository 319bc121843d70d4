"""experiments/train.py end to end: a real short run, its run directory, resume and errors."""

import importlib.util
import json

import keras

import kdkeras  # noqa: F401  (registers the custom layers a .keras file may hold)
import pytest

from helpers import CIFAR10_JPEG, run_script

pytestmark = pytest.mark.skipif(not CIFAR10_JPEG.exists(), reason="CIFAR-10 (JPEG) copy not found")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("train") / "resnet8"
    proc = run_script("train.py", "--model=resnet8", "--preset=smoke",
                      f"--data_dir={CIFAR10_JPEG}", f"--workdir={workdir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workdir, proc


def test_run_directory_holds_model_config_history_and_provenance(smoke_run):
    workdir, _ = smoke_run
    for name in ("model.keras", "config.json", "history.csv", "history.json", "results.json"):
        assert (workdir / name).exists(), name
    assert (workdir / "tensorboard").is_dir()
    results = json.loads((workdir / "results.json").read_text())
    prov = results["provenance"]
    assert prov["preset"] == "smoke" and prov["seed"] == 0 and prov["epochs"] == 1
    assert results["schedule"]["name"] == "shortened"
    assert results["schedule"]["description"].startswith(
        "1 epochs, lr ×0.1 every 50, batch 32, 256 training images (the paper: 200 epochs")
    assert prov["num_train"] == 256 and prov["num_test"] == 128
    assert prov["dataset"] == "image_folder" and len(prov["git_commit"]) >= 7
    assert "cpu" in prov["machine"] and prov["date"].startswith("20")
    model = keras.saving.load_model(workdir / "model.keras")
    assert model.name == "resnet8" and model.output_shape == (None, 10)


def test_resume_continues_from_the_last_checkpoint(smoke_run):
    workdir, _ = smoke_run
    proc = run_script("train.py", "--model=resnet8", "--preset=smoke", "--epochs=2",
                      f"--data_dir={CIFAR10_JPEG}", f"--workdir={workdir}", "--resume")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Resuming" in proc.stdout and "after epoch 1/2" in proc.stdout
    history = json.loads((workdir / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]


def test_existing_run_directory_is_refused_without_resume_or_overwrite(smoke_run):
    workdir, _ = smoke_run
    proc = run_script("train.py", "--model=resnet8", "--preset=smoke",
                      f"--data_dir={CIFAR10_JPEG}", f"--workdir={workdir}")
    assert proc.returncode == 2
    assert "already holds a run" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("args, message", [
    (["--model=resnet7"], "Unknown model 'resnet7'. Valid names: vgg11"),
    (["--data_dir=/nonexistent/cifar"], "/nonexistent/cifar"),
    (["--preset=huge"], "preset"),
    (["--batch_size=0"], "batch_size must be a positive integer"),
])
def test_bad_inputs_give_one_clear_error(tmp_path, args, message):
    base = ["--preset=smoke", f"--data_dir={CIFAR10_JPEG}", f"--workdir={tmp_path / 'w'}"]
    proc = run_script("train.py", *base, *args)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_short_real_run_learns_well_above_chance(tmp_path):
    proc = run_script("train.py", "--model=resnet8", "--preset=fast", "--epochs=3",
                      "--train_subset=3000", "--test_subset=1000", "--batch_size=64",
                      f"--data_dir={CIFAR10_JPEG}", f"--workdir={tmp_path / 'r8'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "r8" / "results.json").read_text())
    # 10 classes: chance is 10%.
    assert results["test_accuracy"] > 0.25, results["test_accuracy"]


def test_logs_are_quiet_by_default(smoke_run):
    """No TensorFlow start-up lines, absl/tfds INFO or Keras shuffle warning (--verbosity
    brings them back)."""
    _, proc = smoke_run
    for noise in ("oneDNN", "absl::InitializeLog", "Constructing tf.data", "shuffle=True"):
        assert noise not in proc.stderr and noise not in proc.stdout, noise
    assert "resnet8: test accuracy" in proc.stdout
