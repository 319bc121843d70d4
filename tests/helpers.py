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


def randomise_batch_norm(model, seed: int = 0):
    """Non-trivial BatchNorm weights and statistics (a fresh BN is the identity map)."""
    import keras
    import numpy as np

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.2, n),
                               rng.normal(0, 0.2, n), rng.uniform(0.5, 2.0, n)])
    return model


def last_json_lines(procs: dict, timeout: int) -> dict:
    """name -> the JSON on the last stdout line of each `subprocess.Popen` in `procs`.

    Asserts every process exits 0; kills any left running (a failed peer can
    leave the others waiting on a collective).
    """
    import json

    outputs = {}
    try:
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=timeout)
            assert proc.returncode == 0, f"{name}: {err[-3000:]}"
            outputs[name] = json.loads(out.strip().splitlines()[-1])
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    return outputs
