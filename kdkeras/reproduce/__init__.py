"""Reproduction of the paper's Tables 1–20: the tables as data, and the engine that runs them.

`tables` (which runs each table compares), `settings` (what a reproduction
depends on, and how run directories are named), `engine` (`Reproducer` and
`reproduce`: runs or reads back every row, writes `table_<N>.json`), `records`
(what a table file keeps) and `model_cost` (tap counts and cost columns).
`experiments/reproduce.py` maps its flags onto `Settings` and calls `reproduce`.
"""

import importlib

from kdkeras.reproduce import tables
from kdkeras.reproduce.settings import Settings

# The engine and records need TensorFlow (through the data readers); `tables`
# and `settings` do not, so the GPU machine's JAX-only scripts can read the
# tables without it. The engine's names load on first use.
_LAZY = {"Reproducer": "engine", "reproduce": "engine", "split_by_pair": "engine",
         "run_record": "records"}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f"kdkeras.reproduce.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'kdkeras.reproduce' has no attribute {name!r}")


__all__ = ["Reproducer", "Settings", "reproduce", "run_record",
           "split_by_pair", "tables"]
