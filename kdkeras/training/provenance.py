"""Where a result came from: code version, machine, date, and the run's scale."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]


def git_commit(repo: Path = _REPO) -> str:
    """HEAD's hash, with '+dirty' if tracked files differ from it.

    Outside git (an installed wheel on a machine without the repository, e.g. the
    GPU box) it is `$KDKERAS_GIT_COMMIT` when set (the commit the wheel was built
    from), else 'unknown'.
    """
    fallback = os.environ.get("KDKERAS_GIT_COMMIT") or "unknown"
    if not (repo / ".git").exists():
        return fallback
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                             text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=repo, capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return fallback


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name() -> str:
    """The accelerator the backend uses, else the CPU, in words."""
    try:
        import keras
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf
            gpus = tf.config.list_physical_devices("GPU")
            if gpus:
                details = tf.config.experimental.get_device_details(gpus[0])
                return details.get("device_name", "GPU")
        elif keras.backend.backend() == "jax":
            import jax
            dev = jax.devices()[0]
            if dev.platform != "cpu":
                return dev.device_kind
    except Exception:  # noqa: BLE001 - provenance must never break a run
        pass
    return f"CPU: {cpu_name()} ({os.cpu_count()} cores)"


def machine() -> dict:
    info = {"host": platform.node(), "platform": platform.platform(), "python": sys.version.split()[0],
            "cpu": cpu_name(), "cpu_count": os.cpu_count(), "device": device_name()}
    try:
        import keras
        info["keras"] = keras.__version__
        info["backend"] = keras.backend.backend()
        if info["backend"] == "tensorflow":
            import tensorflow as tf
            info["tensorflow"] = tf.__version__
    except Exception:  # noqa: BLE001
        pass
    return info


def provenance(**scale) -> dict:
    """The provenance record every result file carries.

    `scale` holds what the run was: preset, seed, dataset, data sizes, epochs.
    """
    return {
        "git_commit": git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "command": " ".join(sys.argv),
        **scale,
    }


def accelerator() -> dict:
    """What a run computed on: the backend, and under JAX its devices and version."""
    import keras

    info = {"backend": keras.backend.backend(), "keras": keras.__version__}
    if info["backend"] == "jax":
        import jax

        info.update(jax=jax.__version__, devices=[f"{d.platform}:{d.device_kind}"
                                                  for d in jax.devices()])
    return info


def write_json_atomic(path, data) -> None:
    """Writes JSON through a temporary file and a rename: never a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2, sort_keys=False, default=_jsonable)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # A failed write (e.g. a full disk) leaves no partial file.
        raise


def _jsonable(obj):
    try:
        return float(obj)
    except (TypeError, ValueError):
        return str(obj)
