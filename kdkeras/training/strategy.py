"""`tf.distribute` strategies by name: `"default"`, `"mirrored"` or `"mirrored:N"`.

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
"""

from __future__ import annotations

# TensorFlow is imported inside the functions: `parse_strategy` validates
# configs (`kdkeras.training.config`) without loading it.

import functools
import re
import warnings

STRATEGY_NAMES = ("default", "mirrored")
_SPEC = re.compile(r"^(default|mirrored)(?::([1-9][0-9]*))?$")


def parse_strategy(spec: str) -> tuple[str, int | None]:
    """`"mirrored:2"` -> `("mirrored", 2)`; `"default"` -> `("default", None)`."""
    match = _SPEC.match(str(spec))
    if not match or (match.group(1) == "default" and match.group(2)):
        raise ValueError(
            "strategy must be 'default', 'mirrored' or 'mirrored:N' (N devices). "
            f"Received: strategy={spec!r}")
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
    """Makes the devices `spec` names exist: splits the CPU for `mirrored:N` without a GPU."""
    import tensorflow as tf

    name, count = parse_strategy(spec)
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


def on_cpu_replicas(strategy) -> bool:
    """Whether `strategy` mirrors over more than one device and any of them is a CPU."""
    if strategy.num_replicas_in_sync < 2:
        return False
    devices = getattr(strategy.extended, "worker_devices", ())
    return any("CPU" in d.upper() for d in devices)


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
