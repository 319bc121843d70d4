"""Table files: differences paired by seed with their 95% interval, and the schedule named."""

import math

import pytest

from kdkeras.reporting import aggregate
from kdkeras.reproduce import records


def _runs(values):
    return [{"seed": s, "test_accuracy": v} for s, v in values.items()]


def test_paired_difference_by_hand():
    row = _runs({0: 0.52, 1: 0.50, 2: 0.55, 3: 0.9})     # seed 3 has no partner
    other = _runs({0: 0.50, 1: 0.49, 2: 0.52})
    d = records.paired_difference(row, other)
    # Per seed: +2, +1, +3 points; mean 2, std 1, 95% t interval 2 ± 4.303·1/√3.
    assert d["seeds"] == [0, 1, 2] and d["n"] == 3
    assert d["per_seed"] == pytest.approx([2.0, 1.0, 3.0])
    assert d["mean"] == pytest.approx(2.0) and d["std"] == pytest.approx(1.0)
    half = 4.303 / math.sqrt(3)
    assert d["ci95"] == pytest.approx([2.0 - half, 2.0 + half])


def test_paired_difference_of_one_seed_has_no_interval_and_none_without_common_seeds():
    d = records.paired_difference(_runs({0: 0.6}), _runs({0: 0.5}))
    assert d["mean"] == pytest.approx(10.0) and d["std"] is None and d["ci95"] is None
    assert records.paired_difference(_runs({0: 0.6}), _runs({1: 0.5})) is None


@pytest.mark.parametrize("df, t", [(1, 12.706), (2, 4.303), (12, 2.228), (40, 1.96)])
def test_t_quantiles(df, t):
    assert aggregate.t975(df) == t


def _run(epochs, decay, subset, num_train):
    return {"epochs": epochs, "lr_decay_every": decay, "batch_size": 128, "train_subset": subset,
            "data": {"num_train": num_train, "num_test": 10000}}


def test_schedule_is_named_paper_only_when_it_is_the_papers():
    paper = records.schedule_record("cifar10_jpeg", _run(200, 50, None, 50000))
    assert paper["name"] == "paper" and paper["epochs"] == 200
    short = records.schedule_record("cifar10_jpeg", _run(20, 5, None, 50000))
    assert short["name"] == "shortened"
    assert short["description"].startswith("20 epochs, lr ×0.1 every 5, batch 128, 50000")
    subset = records.schedule_record("cifar10_jpeg", _run(200, 50, 10000, 10000))
    assert subset["name"] == "shortened"
