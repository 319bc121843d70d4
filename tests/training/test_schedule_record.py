"""A result file names a schedule "paper" only when it is the paper's (rules of evidence)."""

from kdkeras.training.config import TrainConfig, preset_label, schedule_record
from kdkeras.training.trainer import run_schedule

FULL_CIFAR10 = {"dataset": "image_folder", "num_train": 50000, "num_test": 10000}


def _schedule(**overrides):
    values = dict(epochs=200, lr_decay_every=50, batch_size=128, train_subset=None,
                  num_train=50000, num_test=10000)
    return schedule_record("image_folder", **{**values, **overrides})


def test_the_papers_schedule_is_named_paper():
    record = _schedule()
    assert record["name"] == "paper"
    assert record["description"] == "200 epochs, lr ×0.1 every 50, batch 128, 50000 training images"
    assert preset_label("paper", record) == "paper"


def test_any_departure_is_named_shortened_and_never_labelled_paper():
    for change in (dict(epochs=8), dict(lr_decay_every=6), dict(batch_size=64),
                   dict(train_subset=10000, num_train=10000), dict(lr_decay_factor=0.5)):
        record = _schedule(**change)
        assert record["name"] == "shortened", change
        assert record["description"].endswith(
            "(the paper: 200 epochs, ×0.1 every 50, batch 128, all images)"), change
        assert preset_label("paper", record) == "paper-shortened"
        assert preset_label("fast", record) == "fast"   # a named shortened preset keeps its name


def test_imagenet64_has_its_own_paper_schedule():
    record = schedule_record("imagenet64", epochs=40, lr_decay_every=10, batch_size=64,
                             train_subset=None, num_train=1281167, num_test=50000)
    assert record["name"] == "paper"


def test_a_training_run_cut_short_under_the_paper_preset_is_paper_shortened():
    # The CPU teachers of issue 16: --preset=paper --epochs=8 --lr_decay_every=6.
    config = TrainConfig(model="resnet32", preset="paper", epochs=8, lr_decay_every=6)
    record = run_schedule(config, FULL_CIFAR10)
    assert (record["name"], record["epochs"], record["lr_decay_every"]) == ("shortened", 8, 6)
    assert preset_label(config.preset, record) == "paper-shortened"
    assert run_schedule(TrainConfig(model="resnet32", preset="paper"), FULL_CIFAR10)["name"] == "paper"
