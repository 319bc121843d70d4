"""`strategy="multiworker"` on JAX: two processes joined by `jax.distributed` against one process.

Two JAX processes on localhost (one CPU device each, gloo collectives,
`KERAS_DISTRIBUTION_*` naming process 0 as the coordinator) train
data-parallel (`keras.distribution.DataParallel`, `prepare_jax_processes`)
through `kdkeras.training.runs.distill_model` on arrays, each feeding its half of
every global batch (`process_share`); one process runs the same on the whole
batches. The method is the full one with K=1 teacher (Gram + KL + β,
adapters, weight decay, augmentation), one epoch of 2 steps of global batch 8.
Under `DataParallel` the arrays in the step are global, so ‖∇CE‖ and ‖∇KD‖
are the global batch's without any code of ours: the chief's student must
equal the one-process student to float32 round-off. Measured on this stack
(JAX 0.10.2, CPU): ≤ 2.4e-7 absolute on the weights, ≤ 1e-7 relative on
the logged τ, β and losses; tolerance 1e-5. Only
process 0 writes in the run directory.

Each run is this file as a script in a fresh interpreter (jax.distributed must
be initialised before JAX's first computation).
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

TOLERANCE = 1e-5
NUM_CLASSES, IMAGE_SHAPE = 4, (8, 8, 3)


def _run(spec: str, workdir: str, teacher: str) -> dict:
    from kdkeras.training import strategy as strategies

    strategies.prepare_devices(spec)  # joins the other process (KERAS_DISTRIBUTION_*)
    import numpy as np

    from kdkeras.data.numpy_data import ArraySplits
    from kdkeras.training.config import DistillRunConfig, resolve_config
    from kdkeras.training.runs import distill_model

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (24, *IMAGE_SHAPE), dtype=np.uint8)
    labels = (np.arange(24) % NUM_CLASSES).astype(np.int32)
    data = ArraySplits(name="random", x_train=images[:16], y_train=labels[:16],
                       x_test=images[16:], y_test=labels[16:],
                       class_names=tuple(f"c{k}" for k in range(NUM_CLASSES)), source="random",
                       mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    config = resolve_config(
        DistillRunConfig, "smoke", dataset="random", model="resnet8", teacher_model="resnet8",
        teachers=(teacher,), method="ours", distill_options=(("always_adapt", True),),
        epochs=1, batch_size=8, train_subset=16, test_subset=8, learning_rate=0.1,
        weight_decay=1e-3, workdir=workdir, strategy=spec, verbose=0)
    results = distill_model(config, data)
    import jax

    return {"processes": jax.process_count(), "devices": jax.device_count(),
            "task": strategies.non_chief_task(spec), "workdir": results["config"]["workdir"],
            "history": results["history"], "test_accuracy": results["test_accuracy"]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _files(run_dir: Path) -> set[str]:
    return {str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    import keras

    from kdkeras import models

    root = tmp_path_factory.mktemp("multiworker_jax")
    keras.utils.set_random_seed(100)
    teacher = str(root / "teacher.keras")
    models.get("resnet8", num_classes=NUM_CLASSES, input_shape=IMAGE_SHAPE).save(teacher)
    (root / "tmp").mkdir()
    base = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="jax", TMPDIR=str(root / "tmp"),
                JAX_PLATFORMS="cpu")
    coordinator = f"localhost:{_free_port()}"
    procs = {}
    for name, spec, env in [
        ("single", "default", {}),
        *[(f"process-{i}", "multiworker",
           {"KERAS_DISTRIBUTION_JOB_ADDRESSES": coordinator,
            "KERAS_DISTRIBUTION_NUM_PROCESSES": "2", "KERAS_DISTRIBUTION_PROCESS_ID": str(i)})
          for i in range(2)]]:
        workdir = root / ("single" if name == "single" else "cluster")
        procs[name] = subprocess.Popen([sys.executable, __file__, spec, str(workdir), teacher],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                       env={**base, **env})
    from helpers import last_json_lines   # here: this file also runs as a worker script

    return root, last_json_lines(procs, timeout=500)


@pytest.mark.slow
def test_two_jax_processes_give_the_one_process_update(runs):
    import keras
    import numpy as np

    from kdkeras import models  # noqa: F401 - registers the models' layers for loading

    root, out = runs
    assert [(out[n]["processes"], out[n]["devices"]) for n in ("single", "process-0")] == \
        [(1, 1), (2, 2)]
    single = keras.saving.load_model(root / "single" / "student.keras", compile=False)
    chief = keras.saving.load_model(root / "cluster" / "student.keras", compile=False)
    diffs = [float(np.max(np.abs(a - b))) for a, b in zip(single.get_weights(),
                                                         chief.get_weights())]
    assert len(diffs) == len(single.get_weights()) > 0
    assert max(diffs) < TOLERANCE
    (row_single,), (row_chief,), (row_other,) = (out[n]["history"]
                                                  for n in ("single", "process-0", "process-1"))
    for name in ("tau", "beta", "kd_scale", "ce", "kl", "ce_grad_norm", "kd_grad_norm"):
        assert row_chief[name] == pytest.approx(row_single[name], rel=TOLERANCE), name
        assert row_other[name] == pytest.approx(row_chief[name], rel=TOLERANCE), name
    assert row_single["kd_scale"] < 1.0          # β scaled the KD gradient: exercised
    assert out["process-0"]["test_accuracy"] == out["single"]["test_accuracy"]


@pytest.mark.slow
def test_only_process_0_writes_the_run_directory(runs):
    root, out = runs
    assert out["process-0"]["task"] is None and out["process-1"]["task"] == "process-1"
    worker_root = (root / "tmp" / "kdkeras-process-1").resolve()
    assert Path(out["process-1"]["workdir"]).is_relative_to(worker_root)
    assert not [p for p in worker_root.rglob("*") if p.is_file()]
    assert _files(root / "cluster") == _files(root / "single")
    assert {"student.keras", "results.json", "config.json",
            "checkpoints/epoch-0001.weights.h5"} <= _files(root / "cluster")


def test_each_process_gets_its_rows_of_every_batch_and_uneven_batches_are_refused():
    import numpy as np

    from kdkeras.data.numpy_data import ArrayBatches
    from kdkeras.training import strategy as strategies

    images = np.arange(12 * 2 * 2 * 3, dtype=np.uint8).reshape(12, 2, 2, 3)
    labels = np.arange(12)
    batches = ArrayBatches(images, labels, batch_size=4, training=False, mean=(0, 0, 0),
                           std=(1 / 255, 1 / 255, 1 / 255))   # (x/255 - 0)·255: x itself
    shares = [strategies.process_share(batches, index=p, count=2) for p in range(2)]
    assert [len(s) for s in shares] == [3, 3]
    for i in range(3):
        got = [np.asarray(s[i][1]).tolist() for s in shares]
        assert got == [[4 * i, 4 * i + 1], [4 * i + 2, 4 * i + 3]]
        assert np.array_equal(np.asarray(shares[1][i][0]), images[4 * i + 2:4 * i + 4])
    assert strategies.process_share(batches, index=0, count=1) is batches
    # 13 examples in batches of 4: the last batch holds 1, which 2 processes cannot split.
    uneven = ArrayBatches(np.zeros((13, 2, 2, 3), np.uint8), np.zeros(13), batch_size=4,
                          training=False)
    with pytest.raises(ValueError, match=r"Batches of \[1\] examples do not split evenly over 2"):
        strategies.process_share(uneven, index=0, count=2)
    with pytest.raises(ValueError, match=r"Batches of \[4\] examples do not split evenly over 3"):
        strategies.process_share(batches, index=0, count=3)


if __name__ == "__main__":
    print(json.dumps(_run(sys.argv[1], sys.argv[2], sys.argv[3])))
