"""`strategy="multiworker"`: two TensorFlow worker processes on localhost against one process.

The two workers (`MultiWorkerMirroredStrategy`, one CPU each, `TF_CONFIG`
naming two localhost ports) and one single-process run each call
`kdkeras.training.runs.distill_model` on the same data, teachers and seed: the
full method (K=2 teachers, Gram + KL + β, adapters, Nesterov SGD, weight
decay), one epoch of 2 steps of global batch 8 (each worker takes 4 of every
8 examples: tf.data's data sharding), then evaluation, checkpoint and
`student.keras`. The workers see different halves of each batch, so a τ =
‖∇CE‖/‖∇KD‖ taken from each worker's own gradients would differ from the
one-process τ; the step all-reduces ∇CE and ∇KD before β
(`kdkeras.distill.steps_tf`), and the chief's student must equal the
single-process student to float32 round-off. Measured on this stack (TF 2.21,
CPU): the weights agree to 2.4e-7 absolute and τ, β and the losses to 2.2e-7
relative; the tolerances are 1e-5. A step that took τ from each worker's own
gradients (the bug this guards against, put in by hand) made the weights
differ by 1.2e-2.

Only the chief writes in the run directory: worker 1 runs the same program
(every task must, the saves and evaluation hold collective ops) with its
workdir under its own temporary folder, removed when its run completes.

The workers must create their strategy before TensorFlow's first op, so each
run is this file as a script in a fresh interpreter.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from kdkeras.training import strategy as strategies

TOLERANCE = 1e-5
DATA = dict(num_train=16, num_test=8, num_classes=4, image_shape=(8, 8, 3), seed=0)


# --- One run (a worker or the single process), run as a script ------------------------


def _run(spec: str, workdir: str, teachers: list[str]) -> dict:
    strategies.prepare_devices(spec)  # before TensorFlow's first op (joins the cluster)
    from kdkeras.data import load_dataset
    from kdkeras.training.config import DistillRunConfig, resolve_config
    from kdkeras.training.runs import distill_model

    splits = load_dataset("synthetic", **DATA)
    config = resolve_config(
        DistillRunConfig, "smoke", dataset="synthetic", model="resnet8", teacher_model="resnet8",
        teachers=tuple(teachers), method="ours", distill_options=(("always_adapt", True),),
        epochs=1, batch_size=8, train_subset=16, test_subset=8, learning_rate=0.1,
        weight_decay=1e-3, workdir=workdir, strategy=spec, verbose=0)
    results = distill_model(config, splits)
    import tensorflow as tf

    return {"replicas": tf.distribute.get_strategy().num_replicas_in_sync
            if spec == "default" else strategies.get_strategy(spec).num_replicas_in_sync,
            "task": strategies.non_chief_task(spec),
            "workdir": results["config"]["workdir"],
            "history": results["history"], "test_accuracy": results["test_accuracy"]}


# --- The test -------------------------------------------------------------------------


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _make_teachers(folder: Path) -> list[str]:
    import keras

    from kdkeras import models

    paths = []
    for k in range(2):
        keras.utils.set_random_seed(100 + k)
        teacher = models.get("resnet8", num_classes=DATA["num_classes"],
                             input_shape=DATA["image_shape"])
        paths.append(str(folder / f"teacher-{k}.keras"))
        teacher.save(paths[-1])
    return paths


def _files(run_dir: Path) -> set[str]:
    """The run directory's files, the TensorBoard event files by folder only (their names hold
    the host and the process id)."""
    return {str(p.relative_to(run_dir).parent if "tensorboard" in p.parts else
                p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("multiworker")
    teachers = _make_teachers(root)
    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    base = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow",
                TMPDIR=str(root / "tmp"))
    (root / "tmp").mkdir()
    procs = {}
    for name, spec, env in [
        ("single", "default", {}),
        *[(f"worker-{i}", "multiworker",
           {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})})
          for i in range(2)]]:
        workdir = root / ("single" if name == "single" else "cluster")
        procs[name] = subprocess.Popen(
            [sys.executable, __file__, spec, str(workdir), *teachers],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**base, **env})
    from helpers import last_json_lines   # here: this file also runs as a worker script

    return root, last_json_lines(procs, timeout=400)


@pytest.mark.slow
def test_two_workers_give_the_one_process_update(runs):
    import keras
    import numpy as np

    from kdkeras import models

    root, out = runs
    assert [out[n]["replicas"] for n in ("single", "worker-0", "worker-1")] == [1, 2, 2]
    single = keras.saving.load_model(root / "single" / "student.keras", compile=False)
    chief = keras.saving.load_model(root / "cluster" / "student.keras", compile=False)
    keras.utils.set_random_seed(0)   # the student's initial weights, as distill_model builds them
    initial = models.get("resnet8", num_classes=DATA["num_classes"], input_shape=DATA["image_shape"])
    diffs = [float(np.max(np.abs(a - b))) for a, b in zip(single.get_weights(),
                                                         chief.get_weights())]
    moved = max(float(np.max(np.abs(a - b))) for a, b in zip(single.get_weights(),
                                                             initial.get_weights()))
    assert len(diffs) == len(single.get_weights()) > 0
    assert moved > 1e-3                  # the step changed the weights ...
    assert max(diffs) < TOLERANCE        # ... the same way on two workers as on one process
    (row_single,), (row_chief,), (row_worker,) = (out[n]["history"]
                                                   for n in ("single", "worker-0", "worker-1"))
    for name in ("tau", "beta", "kd_scale", "ce", "kl", "ce_grad_norm", "kd_grad_norm"):
        assert row_chief[name] == pytest.approx(row_single[name], rel=TOLERANCE), name
        assert row_worker[name] == pytest.approx(row_chief[name], rel=TOLERANCE), name
    assert row_single["kd_scale"] < 1.0          # β scaled the KD gradient: exercised
    assert out["worker-0"]["test_accuracy"] == out["single"]["test_accuracy"]


@pytest.mark.slow
def test_only_the_chief_writes_the_run_directory(runs):
    root, out = runs
    assert out["worker-0"]["task"] is None and out["worker-1"]["task"] == "worker-1"
    assert out["worker-0"]["workdir"] == str(root / "cluster")
    worker_root = (root / "tmp" / "kdkeras-worker-1").resolve()
    # Worker 1 ran in its own temporary copy, removed once its run completed ...
    assert Path(out["worker-1"]["workdir"]).is_relative_to(worker_root)
    assert not [p for p in worker_root.rglob("*") if p.is_file()]
    # ... and wrote nothing in the chief's, which holds what one process writes.
    assert _files(root / "cluster") == _files(root / "single")
    assert {"student.keras", "results.json", "config.json", "checkpoints/state.json",
            "checkpoints/epoch-0001.weights.h5"} <= _files(root / "cluster")


# --- The pieces, without a cluster ------------------------------------------------------


def test_multiworker_is_a_strategy_name_without_a_device_count():
    assert strategies.parse_strategy("multiworker") == ("multiworker", None)
    with pytest.raises(ValueError, match="'multiworker' .*Received: strategy='multiworker:2'"):
        strategies.parse_strategy("multiworker:2")


@pytest.mark.parametrize("tf_config, message", [
    (None, "TF_CONFIG environment variable, which is not set"),
    ("{not json", "TF_CONFIG must look like"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}',
     "TF_CONFIG must look like"),
    ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}',
     "task index 2 is not one of the 2 'worker' tasks"),
])
def test_a_missing_or_wrong_tf_config_is_one_clear_error(monkeypatch, tf_config, message):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(ValueError, match=message):
        strategies.read_tf_config()


@pytest.mark.parametrize("cluster, task, expected", [
    ({"worker": ["a:1", "b:1"]}, ("worker", 0), None),
    ({"worker": ["a:1", "b:1"]}, ("worker", 1), "worker-1"),
    ({"chief": ["c:1"], "worker": ["a:1"]}, ("chief", 0), None),
    ({"chief": ["c:1"], "worker": ["a:1"]}, ("worker", 0), "worker-0"),
])
def test_the_chief_is_tensorflows(monkeypatch, cluster, task, expected):
    monkeypatch.setenv("TF_CONFIG", json.dumps(
        {"cluster": cluster, "task": {"type": task[0], "index": task[1]}}))
    assert strategies.non_chief_task("multiworker") == expected
    assert strategies.non_chief_task("mirrored") is None


def test_a_non_chief_writes_under_its_own_temporary_folder(tmp_path, monkeypatch):
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)   # re-read TMPDIR
    run = tmp_path / "runs" / "r1"
    assert strategies.worker_run_dir(run, None) == str(run)
    mine = strategies.worker_run_dir(run, "worker-1")
    assert Path(mine) == (tmp_path / "tmp" / "kdkeras-worker-1").resolve() / \
        run.resolve().relative_to("/")
    # A teacher's run inside it is already the task's own.
    assert strategies.worker_run_dir(Path(mine) / "teachers" / "teacher-0", "worker-1") == \
        str(Path(mine) / "teachers" / "teacher-0")


def test_a_resumed_worker_starts_from_the_chiefs_checkpoints_where_it_can_read_them(tmp_path):
    chief, worker = tmp_path / "chief", tmp_path / "worker"
    (chief / "checkpoints").mkdir(parents=True)
    (chief / "config.json").write_text("{}")
    (chief / "checkpoints" / "epoch-0003.weights.h5").write_text("3")
    (chief / "tensorboard").mkdir()
    (worker / "checkpoints").mkdir(parents=True)
    (worker / "checkpoints" / "epoch-0002.weights.h5").write_text("2")
    strategies.start_worker_copy(chief, worker, resume=False)
    assert sorted(p.name for p in (worker / "checkpoints").iterdir()) == ["epoch-0002.weights.h5"]
    strategies.start_worker_copy(chief, worker, resume=True)
    assert sorted(p.name for p in (worker / "checkpoints").iterdir()) == ["epoch-0003.weights.h5"]
    assert not (worker / "tensorboard").exists()
    # No chief directory readable here (no shared file system): the worker keeps its own copy.
    strategies.start_worker_copy(tmp_path / "elsewhere", worker, resume=True)
    assert (worker / "checkpoints" / "epoch-0003.weights.h5").read_text() == "3"


if __name__ == "__main__":
    print(json.dumps(_run(sys.argv[1], sys.argv[2], sys.argv[3:])))
