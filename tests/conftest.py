"""Shared test set-up: quiet TensorFlow, TensorFlow backend unless told otherwise."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import sys
from pathlib import Path

# tests/helpers.py is importable as `helpers` from every test module.
sys.path.insert(0, str(Path(__file__).parent))
