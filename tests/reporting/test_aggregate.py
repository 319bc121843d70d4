"""kdkeras.reporting.aggregate: mean ± sample std over seeds."""

import numpy as np
import pytest

from kdkeras.reporting import aggregate


def test_mean_and_sample_std_over_seeds():
    stats = aggregate.mean_std([61.0, 63.0, 65.5])
    assert stats["mean"] == pytest.approx(np.mean([61.0, 63.0, 65.5]))
    assert stats["std"] == pytest.approx(np.std([61.0, 63.0, 65.5], ddof=1))
    assert aggregate.mean_std([70.0])["std"] is None
    assert aggregate.format_mean_std(stats) == "63.17 ± 2.25 (n=3)"
