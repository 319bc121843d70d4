"""Reproduction of the paper's Tables 1–20: the tables as data, and the engine that runs them.

`tables` (which runs each table compares), `settings` (what a reproduction
depends on, and how run directories are named), `engine` (`Reproducer` and
`reproduce`: runs or reads back every row, writes `table_<N>.json`), `records`
(what a table file keeps) and `model_cost` (tap counts and cost columns).
`experiments/reproduce.py` maps its flags onto `Settings` and calls `reproduce`.
"""

from kdkeras.reproduce import tables
from kdkeras.reproduce.engine import Reproducer, reproduce, split_by_pair
from kdkeras.reproduce.records import run_record
from kdkeras.reproduce.settings import Settings, options_slug

__all__ = ["Reproducer", "Settings", "options_slug", "reproduce", "run_record",
           "split_by_pair", "tables"]
