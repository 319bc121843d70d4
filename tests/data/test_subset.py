"""select_subset: class balance, determinism, scarce classes (pure NumPy)."""

import numpy as np
import pytest

from kdkeras.data import select_subset


def test_balanced_sorted_unique_and_seeded():
    labels = np.repeat(np.arange(10), 50)  # Sorted by class, like a naive folder listing.
    idx = select_subset(labels, 35, seed=0)
    assert len(idx) == 35 and np.all(np.diff(idx) > 0)
    counts = np.bincount(labels[idx], minlength=10)
    assert counts.max() - counts.min() == 1 and counts.sum() == 35  # 5 classes get 4, 5 get 3.
    np.testing.assert_array_equal(idx, select_subset(labels, 35, seed=0))
    assert not np.array_equal(idx, select_subset(labels, 35, seed=1))


def test_scarce_class_gives_way_to_the_others():
    labels = np.array([0] * 2 + [1] * 20 + [2] * 20)
    idx = select_subset(labels, 12, seed=0)
    assert np.bincount(labels[idx]).tolist() == [2, 5, 5]
    assert len(select_subset(labels, 42)) == 42  # All of it.


def test_size_out_of_range():
    with pytest.raises(ValueError, match="subset must be in 1..3"):
        select_subset(np.array([0, 1, 2]), 4)
    with pytest.raises(ValueError):
        select_subset(np.array([0, 1, 2]), 0)
