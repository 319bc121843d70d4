"""The upstream reference values of `tests/losses/oracle/` (copied from the shared oracle)."""

import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent / "oracle"
# Where the shared oracle lives: the checkout's sibling `shared/oracle`.
SHARED = Path(__file__).resolve().parents[3] / "shared" / "oracle"
SEEDS = (0, 7)


def inputs(name: str) -> dict:
    """`inputs_<name>.npz` as a dict of float64 (labels int) arrays."""
    with np.load(HERE / f"inputs_{name}.npz") as data:
        return {k: (data[k].astype("float64") if data[k].dtype.kind == "f" else data[k])
                for k in data.files}


def upstream(name: str) -> dict:
    return json.loads((HERE / f"upstream_{name}.json").read_text())
