"""The README's main job (experiments/main.py): the shipped full-data teachers, the student
alone, a baseline and the full method, on CIFAR-10 through tensorflow-datasets (mocked,
offline) at smoke scale; and its presets say what runs."""

import json
import os
import subprocess
import sys

import keras
import pytest

import kdkeras  # noqa: F401  (registers the models' layers for load_model)

from helpers import REPO, run_script

# main.py run inside tfds.testing.mock_data: the cifar10 builder yields random
# images without a download, as a machine without the image folder would read them.
MOCKED_MAIN = """
import runpy, sys
import tensorflow_datasets as tfds
sys.path.insert(0, "experiments")
sys.argv = ["experiments/main.py"] + sys.argv[1:]
with tfds.testing.mock_data(num_examples=64):
    runpy.run_path("experiments/main.py", run_name="__main__")
"""


def _run_mocked_main(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-c", MOCKED_MAIN, *args], cwd=REPO,
                          capture_output=True, text=True, timeout=900, env=env)


@pytest.mark.slow
def test_main_job_on_tfds_cifar10_with_the_shipped_teachers(tmp_path):
    proc = _run_mocked_main("--preset=smoke", "--train_subset=64", "--test_subset=32",
                            "--baseline=hinton", f"--workdir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "Data: cifar10 (tfds cifar10" in out
    # The shipped teachers' recorded accuracies, then the three student runs.
    for k, acc in enumerate(("79.64", "79.20", "79.61")):
        assert f"| teacher {k} (resnet32, as recorded) | {acc}% | 40 | 50000 |" in out
    for row in ("| student alone (resnet8) |", "| hinton (1 teacher) |",
                "| ours: P1+P2+P3+β, K=3 |"):
        assert row in out
    assert "Distilled minus alone:" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["schedule"] == {
        "preset": "smoke", "flags_given": ["train_subset", "test_subset"], "dataset": "cifar10",
        "train_images": 64, "test_images": 32, "epochs": 1, "lr_decay_every": 50,
        "batch_size": 32, "seed": 0}
    assert (tmp_path / "curves.png").stat().st_size > 1000
    student = keras.saving.load_model(tmp_path / "ours" / "student.keras")
    assert student.name == "resnet8"
    ours = json.loads((tmp_path / "ours" / "results.json").read_text())
    assert ours["method"] == "ours" and len(ours["teachers"]) == 3
    assert all("teachers-full/resnet32-s" in t for t in ours["teachers"])
    # The config records the schedule that ran.
    config = json.loads((tmp_path / "ours" / "config.json").read_text())
    assert (config["preset"], config["epochs"], config["train_subset"]) == ("smoke", 1, 64)
    # Quiet by default: no TensorFlow start-up lines, no absl INFO, no shuffle warning.
    for noise in ("oneDNN", "I0000", "shuffle=True", "Constructing tf.data"):
        assert noise not in proc.stderr and noise not in out


@pytest.mark.parametrize("args, expected", [
    ((), "Schedule: preset 'demo': 10000 training images, all test images, 10 epochs, "
         "lr 0.01 ×0.1 every 5, batch 128."),
    (("--preset=paper",), "Schedule: preset 'paper': all training images, all test images, "
                          "200 epochs, lr 0.01 ×0.1 every 50, batch 128."),
    (("--preset=fast",), "Schedule: preset 'fast': all training images, all test images, "
                         "20 epochs, lr 0.01 ×0.1 every 5, batch 128."),
    (("--preset=paper", "--epochs=3"), "Schedule: preset 'paper' with --epochs given: all "
                                       "training images, all test images, 3 epochs,"),
])
def test_a_preset_runs_its_own_schedule_unless_a_flag_is_given(args, expected):
    proc = run_script("main.py", "--dry_run", *args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert expected in proc.stdout
    assert "ours: P1+P2+P3+β, K=3: runs/main/ours, teachers " in proc.stdout
