"""`tf.distribute` strategies by name: `"default"`, `"mirrored"`, `"mirrored:N"` or `"multiworker"`.

`TrainConfig.strategy` and the experiments' `--strategy` flag name one of:

* `"default"`: TensorFlow's default strategy (one device, no replicas).
* `"mirrored"`: `tf.distribute.MirroredStrategy` over every GPU, or, on a
  machine without one, over every logical CPU device.
* `"mirrored:N"`: the same over N devices: the first N GPUs, or, without a GPU,
  N logical CPU devices (the CPU split by `split_cpu(N)`, which must run before
  TensorFlow's first op; `prepare_devices` does it for the scripts). On a CPU
  this gains no speed (the replicas share the cores): it is how the multi-device
  code paths are tested without a GPU.

Known traps on this stack (checked, see `STACK.md`): XLA (`jit_compile=True`)
under `MirroredStrategy` on logical CPU devices fails with "Trying to access
resource ... located in device CPU:1 from device CPU:0", so `resolve_jit_compile`
turns it off there with a warning; and Keras 3's optimizer all-reduces
gradients with SUM, which the Distiller's step (`kdkeras.distill.steps_tf`)
accounts for.

* `"multiworker"`: `tf.distribute.MultiWorkerMirroredStrategy`, several
  machines (tasks), each over its own GPUs (or its CPU), configured by the
  `TF_CONFIG` environment variable of each task (see docs/distributed.md). Its
  collective runtime must be set up before TensorFlow's first op
  (`prepare_devices` does it). Every task runs the same program; only the chief
  writes into the run directory (`chief_writes`). On the JAX backend the same
  name means `keras.distribution.DataParallel` over every process's devices,
  the processes joined by `jax.distributed` (`prepare_jax_processes`).

`batch_size` is the global batch under every strategy: each step splits it
over the replicas (devices of all tasks), and the Distiller's step gives the
update one device would give on the whole batch (`tests/training/test_distribute.py`,
`tests/training/test_multiworker.py`).
"""

from __future__ import annotations

# TensorFlow is imported inside the functions: `parse_strategy` validates
# configs (`kdkeras.training.config`) without loading it.

import dataclasses
import functools
import json
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path

from kdkeras.utils.tf_runtime import on_cpu_replicas  # noqa: F401 - re-exported

STRATEGY_NAMES = ("default", "mirrored", "multiworker")
_SPEC = re.compile(r"^(default|mirrored|multiworker)(?::([1-9][0-9]*))?$")


def parse_strategy(spec: str) -> tuple[str, int | None]:
    """`"mirrored:2"` -> `("mirrored", 2)`; `"default"` -> `("default", None)`."""
    match = _SPEC.match(str(spec))
    if not match or (match.group(1) != "mirrored" and match.group(2)):
        raise ValueError(
            "strategy must be 'default', 'mirrored', 'mirrored:N' (N devices) or "
            f"'multiworker' (several machines, configured by TF_CONFIG). Received: strategy={spec!r}")
    return match.group(1), int(match.group(2)) if match.group(2) else None


def split_cpu(num_devices: int) -> None:
    """Splits the CPU into `num_devices` logical devices (before any TensorFlow op).

    Raises:
      ValueError: TensorFlow has already initialised its devices with another split.
    """
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    current = tf.config.get_logical_device_configuration(cpus[0])
    if current is not None and len(current) == num_devices:
        return
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * num_devices)
    except RuntimeError as err:  # "Virtual devices cannot be modified after being initialized"
        raise ValueError(
            f"Cannot split the CPU into {num_devices} logical devices: TensorFlow has already "
            "initialised its devices. Call kdkeras.training.strategy.split_cpu (or "
            "prepare_devices) before any TensorFlow op.") from err


def prepare_devices(spec: str) -> None:
    """Makes the devices `spec` names exist, before TensorFlow's first op.

    Splits the CPU for `mirrored:N` without a GPU; for `multiworker`, joins the
    cluster: creates the `MultiWorkerMirroredStrategy` (TensorFlow) or
    initialises `jax.distributed` and the data-parallel distribution (JAX).
    """
    name, count = parse_strategy(spec)
    if name == "multiworker":
        import keras

        if keras.backend.backend() == "jax":
            prepare_jax_processes()
        else:
            get_strategy(spec)
        return
    import tensorflow as tf

    if name == "mirrored" and count and count > 1 and not tf.config.list_physical_devices("GPU"):
        split_cpu(count)


def get_strategy(spec: str = "default"):
    """The `tf.distribute.Strategy` that `spec` names.

    `"default"` is the strategy in scope (TensorFlow's default strategy outside
    any `scope()`); a mirrored spec gives the same object every time in a
    process, since nested `scope()`s of two different strategies are an error.
    """
    import tensorflow as tf

    name, count = parse_strategy(spec)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "multiworker":
        return _multi_worker_strategy()
    return _mirrored_strategy(count)


@functools.lru_cache(maxsize=None)
def _mirrored_strategy(count: int | None):
    import tensorflow as tf

    devices = [d.name for d in tf.config.list_logical_devices("GPU")]
    if not devices:
        devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    if count is not None:
        if count > len(devices):
            raise ValueError(
                f"strategy='mirrored:{count}' asks for {count} devices, but only {len(devices)} "
                f"exist ({', '.join(devices)}). Without GPUs, call "
                "kdkeras.training.strategy.prepare_devices(spec) before any TensorFlow op.")
        devices = devices[:count]
    return tf.distribute.MirroredStrategy(devices)


def resolve_jit_compile(strategy, jit_compile) -> bool | str:
    """`jit_compile`, except False where XLA cannot run (mirrored logical CPU devices).

    XLA under `MirroredStrategy` on CPU devices fails at the first step with
    "Trying to access resource ... located in device CPU:1 from device CPU:0";
    this turns it off with a warning instead (XLA is also slower than plain
    TensorFlow on CPUs: see benchmarks/README.md).
    """
    if jit_compile is True and on_cpu_replicas(strategy):
        warnings.warn(
            "jit_compile=True is not supported under MirroredStrategy on CPU devices (XLA "
            "cannot reach variables mirrored on another logical device); compiling the "
            "train step without XLA.", RuntimeWarning, stacklevel=2)
        return False
    return jit_compile


# --- Several machines ------------------------------------------------------------


def read_tf_config() -> dict:
    """The cluster and this task from `TF_CONFIG`, checked, with one clear error if it is wrong.

    `TF_CONFIG` is TensorFlow's: `{"cluster": {"worker": ["host:port", ...]},
    "task": {"type": "worker", "index": i}}` (optionally a `"chief"` job of one
    task), the same cluster on every task and each task its own `task`.
    """
    example = ('TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
               '"task": {"type": "worker", "index": 0}}\'')
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise ValueError(
            "strategy='multiworker' reads the cluster from the TF_CONFIG environment variable, "
            f"which is not set. Set it on every task, e.g. {example} (see docs/distributed.md).")
    try:
        config = json.loads(raw)
        cluster, task = config["cluster"], config["task"]
        task_type, index = task["type"], int(task["index"])
        tasks = cluster[task_type]
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"TF_CONFIG must look like {example}; its task's type must be a job of "
                         f"its cluster ({type(err).__name__}: {err}). Received: TF_CONFIG={raw}"
                         ) from None
    if not 0 <= index < len(tasks):
        raise ValueError(f"TF_CONFIG's task index {index} is not one of the {len(tasks)} "
                         f"{task_type!r} tasks of its cluster. Received: TF_CONFIG={raw}")
    return config


def non_chief_task(spec: str) -> str | None:
    """This process's task name (e.g. `"worker-1"`) if it is not the one that writes, else None.

    Under `multiworker` the chief is TensorFlow's: the `"chief"` task, or worker
    0 when the cluster has no chief job; on JAX, process 0. Every other
    strategy runs one process, which writes.
    """
    name, _ = parse_strategy(spec)
    if name != "multiworker":
        return None
    import keras

    if keras.backend.backend() == "jax":
        import jax

        index = jax.process_index()
        return None if index == 0 else f"process-{index}"
    config = read_tf_config()
    task_type, index = config["task"]["type"], int(config["task"]["index"])
    chief = task_type == "chief" or (task_type == "worker" and index == 0
                                     and "chief" not in config["cluster"])
    return None if chief else f"{task_type}-{index}"


def worker_run_dir(workdir, task: str | None) -> str:
    """Where `task` writes the run the chief writes in `workdir`: `workdir` itself for the chief.

    A non-chief task writes the same tree under its own folder of the system's
    temporary directory (`<tmp>/kdkeras-<task>/<absolute workdir>`), as
    TensorFlow's multi-worker guide advises: every task must run the saves
    (they may hold collective ops), and only the chief's land in `workdir`.
    A path already under the task's folder is its own (a teacher run of a
    distillation run) and is returned unchanged.
    """
    if task is None:
        return str(workdir)
    root = (Path(tempfile.gettempdir()) / f"kdkeras-{task}").resolve()
    path = Path(workdir).resolve()
    if path.is_relative_to(root):
        return str(workdir)
    return str(root / path.relative_to(path.anchor))


def start_worker_copy(chief_dir, worker_dir, *, resume: bool) -> None:
    """On `resume`, starts a non-chief task from the chief's run directory where it can read it.

    With a shared file system the chief's checkpoints are the truth: copying
    them makes every task restore the same epoch. Without one, the task
    resumes from its own copy (kept until its run completes).
    """
    chief_dir, worker_dir = Path(chief_dir), Path(worker_dir)
    if resume and (chief_dir / "config.json").exists():
        shutil.rmtree(worker_dir, ignore_errors=True)
        shutil.copytree(chief_dir, worker_dir, ignore=shutil.ignore_patterns("tensorboard"))


def chief_writes(run):
    """Decorates `run(config, ...)` (a whole run) so that only the chief writes in `config.workdir`.

    A non-chief task runs the same program (collectives need every task) with
    `workdir` replaced by `worker_run_dir(...)`, and removes that copy once the
    run has completed (a failed run keeps it, for `--resume`).
    """

    @functools.wraps(run)
    def run_as_this_task(config, *args, **kwargs):
        workdir = worker_run_dir(config.workdir, non_chief_task(config.strategy))
        if workdir == str(config.workdir):
            return run(config, *args, **kwargs)
        start_worker_copy(config.workdir, workdir, resume=config.resume)
        result = run(dataclasses.replace(config, workdir=workdir), *args, **kwargs)
        shutil.rmtree(workdir, ignore_errors=True)
        return result

    return run_as_this_task


@functools.lru_cache(maxsize=None)
def _multi_worker_strategy():
    import tensorflow as tf

    read_tf_config()

    class KerasMultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
        """`MultiWorkerMirroredStrategy` whose `reduce` takes what Keras 3's `fit` hands it.

        Keras 3.15's TensorFlow trainer (keras-team/keras#20585) calls
        `strategy.reduce("MEAN", batch, axis=None)` on the whole (x, y) structure
        of the first batch (`_maybe_symbolic_build`), which TensorFlow's reduce
        supports only for one value under several workers, and reduces every
        log with `axis=0`, which fails for scalars. This reduces each value of
        a structure alone, scalars across replicas only; the values are the
        same as Keras means them.
        """

        def reduce(self, reduce_op, value, axis):
            reduce_one = super().reduce

            def one(v):
                rank = self.experimental_local_results(v)[0].shape.rank
                return reduce_one(reduce_op, v, None if rank == 0 else axis)

            return tf.nest.map_structure(one, value)

    try:
        return KerasMultiWorkerMirroredStrategy()
    except RuntimeError as err:  # "Collective ops must be configured at program startup"
        raise ValueError(
            "strategy='multiworker' must be created before TensorFlow's first op: call "
            "kdkeras.training.strategy.prepare_devices('multiworker') at the start of the "
            f"program ({err}).") from err


def prepare_jax_processes(coordinator_address: str | None = None,
                          num_processes: int | None = None,
                          process_id: int | None = None):
    """JAX: joins this process to the others and trains data-parallel over all their devices.

    `keras.distribution.initialize` (`jax.distributed.initialize`; None
    arguments come from `KERAS_DISTRIBUTION_JOB_ADDRESSES` (the coordinator,
    process 0's `host:port`), `KERAS_DISTRIBUTION_NUM_PROCESSES` and
    `KERAS_DISTRIBUTION_PROCESS_ID`), then `keras.distribution.DataParallel`
    over every device of every process: variables replicated, each batch split
    along its first axis. Each process feeds its own share of every global
    batch (`fit` on process p sees batch_size / num_processes examples a step).
    Returns the distribution.
    """
    import keras

    if keras.backend.backend() != "jax":
        raise ValueError("prepare_jax_processes is for the JAX backend; on TensorFlow, "
                         "strategy='multiworker' uses TF_CONFIG.")
    import jax

    if not jax.distributed.is_initialized():
        keras.distribution.initialize(coordinator_address, num_processes, process_id)
    # kdkeras feeds arrays (kdkeras.data.numpy_data), which Keras does not shard
    # itself: each process hands over its own share.
    distribution = keras.distribution.DataParallel(devices=keras.distribution.list_devices(),
                                                   auto_shard_dataset=False)
    keras.distribution.set_distribution(distribution)
    return distribution


def process_share(batches, index: int | None = None, count: int | None = None):
    """`batches` (a `kdkeras.data.numpy_data.ArrayBatches` of global batches) as process `index`'s share.

    Under `prepare_jax_processes` each process hands `fit` its own rows of every
    global batch: process p of P gets rows [p·B/P, (p+1)·B/P) of a batch of B,
    so the P shares make up the batch one process would see (every process
    builds the same batches, as tf.data's data sharding does). `index` and
    `count` default to JAX's process index and count; one process, or another
    backend, gives `batches` unchanged.

    Raises:
      ValueError: a batch (the last, partial one included) does not split evenly.
    """
    if count is None:
        import keras

        if keras.backend.backend() != "jax":
            return batches
        import jax

        index, count = jax.process_index(), jax.process_count()
    if count == 1:
        return batches
    sizes = {batches.batch_size}
    if not batches.drop_remainder and batches.num_examples % batches.batch_size:
        sizes.add(batches.num_examples % batches.batch_size)
    uneven = sorted(n for n in sizes if n % count)
    if uneven:
        raise ValueError(
            f"Batches of {uneven} examples do not split evenly over {count} processes. Choose "
            "batch_size (and test_subset, for the last test batch) divisible by the number of "
            f"processes. Received: batch_size={batches.batch_size}, "
            f"examples={batches.num_examples}.")
    return _process_share_class()(batches, index, count)


@functools.lru_cache(maxsize=None)
def _process_share_class():
    import keras

    class ProcessShare(keras.utils.PyDataset):
        """Rows [p·B/P, (p+1)·B/P) of each batch of `batches` (see `process_share`)."""

        def __init__(self, batches, index: int, count: int):
            super().__init__()
            self.batches, self.index, self.count = batches, index, count

        def __len__(self):
            return len(self.batches)

        def __getitem__(self, i):
            x, y = self.batches[i]
            share = int(y.shape[0]) // self.count
            rows = slice(self.index * share, (self.index + 1) * share)
            return x[rows], y[rows]

        def on_epoch_end(self):
            self.batches.on_epoch_end()

    return ProcessShare
