"""Teacher recipes for P3: snapshots of one run, and teachers branched from a snapshot.

End to end through experiments/train.py on synthetic data (a parent run with
snapshots, then a branch from its first epoch), and the pieces by hand.
"""

import json

import keras
import numpy as np
import pytest

from kdkeras import models
from kdkeras.training import teacher_recipes
from kdkeras.training.config import DistillRunConfig, TrainConfig

from helpers import run_script

SMOKE = ["--model=resnet8", "--preset=smoke", "--dataset=synthetic", "--epochs=2"]


def _weights(path):
    return keras.saving.load_model(path, compile=False).get_weights()


def test_snapshots_then_a_branch_continues_the_schedule(tmp_path):
    parent = tmp_path / "parent"
    proc = run_script("train.py", *SMOKE, "--snapshot_epochs=1,2", f"--workdir={parent}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    first = teacher_recipes.snapshot_path(parent, 1)
    last = teacher_recipes.snapshot_path(parent, 2)
    assert first.name == "epoch-0001.keras" and first.exists() and last.exists()
    for a, b in zip(_weights(last), _weights(parent / "model.keras")):
        np.testing.assert_array_equal(a, b)   # the last snapshot is the run's final model

    branch = tmp_path / "branch"
    proc = run_script("train.py", *SMOKE, f"--init_from={first}", "--start_epoch=1",
                      "--data_order_seed=7", f"--workdir={branch}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((branch / "results.json").read_text())
    assert [row["epoch"] for row in results["history"]] == [2]     # epochs 2..2 of the schedule
    assert results["config"]["init_from"] == str(first)
    assert results["config"]["data_order_seed"] == 7 and results["config"]["start_epoch"] == 1
    # One more epoch from the parent's epoch-1 weights, on its own data order.
    branched, parent_last = _weights(branch / "model.keras"), _weights(last)
    assert any(not np.array_equal(a, b) for a, b in zip(branched, parent_last))


def test_initialise_from_copies_weights_and_refuses_another_architecture(tmp_path):
    shape = dict(num_classes=3, input_shape=(8, 8, 3))
    keras.utils.set_random_seed(0)
    source = models.get("resnet8", **shape)
    path = tmp_path / "m.keras"
    source.save(path)
    keras.utils.set_random_seed(1)
    target = models.get("resnet8", **shape)
    teacher_recipes.initialise_from(target, path)
    for a, b in zip(target.get_weights(), source.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="only from its own architecture"):
        teacher_recipes.initialise_from(models.get("resnet8", num_classes=5,
                                                   input_shape=(8, 8, 3)), path)
    with pytest.raises(ValueError, match="is not a .keras model file"):
        teacher_recipes.initialise_from(target, tmp_path / "missing.keras")


def test_data_order_seed_defaults_to_the_seed():
    assert teacher_recipes.data_order_seed(TrainConfig(seed=3)) == 3
    assert teacher_recipes.data_order_seed(TrainConfig(seed=3, data_order_seed=5)) == 5


@pytest.mark.parametrize("fields, match", [
    (dict(start_epoch=2), "pass init_from"),
    (dict(start_epoch=10, epochs=10, init_from="m.keras"), "start_epoch must be"),
    (dict(snapshot_epochs=(0,)), "snapshot_epochs must be"),
    (dict(snapshot_epochs=(3,), start_epoch=3, epochs=10, init_from="m.keras"),
     "snapshot_epochs must be epochs in 4..10"),
    (dict(data_order_seed="1"), "data_order_seed must be"),
])
def test_bad_recipe_fields_give_one_clear_error(fields, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**fields)


def test_a_distillation_run_refuses_teacher_recipe_fields():
    with pytest.raises(ValueError, match="teacher-training options"):
        DistillRunConfig(snapshot_epochs=(1,))
