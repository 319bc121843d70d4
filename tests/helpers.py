"""Paths and runners shared by tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CIFAR10_JPEG = Path(os.environ.get("KDKERAS_CIFAR10_JPEG",
                                   REPO.parent / "shared" / "data" / "cifar10-jpeg"))


def run_script(script: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Runs experiments/<script> in a fresh interpreter, as a user would."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, str(REPO / "experiments" / script), *args],
                          cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)
