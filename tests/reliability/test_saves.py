"""A full disk (OSError ENOSPC, injected) while saving a checkpoint, the model or a
JSON record: a clear error, no partial file, the previous file intact."""

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import pytest

from reliability_support import partial_files, tiny_splits

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))

ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture(scope="module")
def model():
    from kdkeras.distill import Distiller, method_config
    from kdkeras.training.runs import build_model

    d = Distiller(build_model("resnet8", tiny_splits()), [], method_config("student"))
    d.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True))
    d.optimizer.build(d.trainable_variables)
    return d


def _checkpointer(model, run_dir):
    from kdkeras.training.checkpoints import EpochCheckpoint

    callback = EpochCheckpoint(run_dir)
    callback.set_model(model)
    callback.set_params({"steps": 4, "epochs": 3})
    callback.on_train_begin()
    return callback


def _end_epoch(callback, epoch):
    callback.on_epoch_begin(epoch)
    callback.on_train_batch_end(3)
    callback.on_epoch_end(epoch, {"loss": 1.0})


def _half_written_then_full(self, path, *args, **kwargs):
    # What got out before the disk filled: an HDF5 header and a little more.
    Path(path).write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    raise ENOSPC


@pytest.mark.parametrize("fault", ["write", "rename"])
def test_disk_full_while_checkpointing_leaves_the_previous_checkpoint(tmp_path, model,
                                                                      monkeypatch, fault):
    from kdkeras.training import checkpoints

    callback = _checkpointer(model, tmp_path)
    _end_epoch(callback, 0)
    if fault == "write":
        def half_written_then_full(path, data):
            Path(path).write_bytes(data[:100])   # what got out before the disk filled
            raise ENOSPC
        monkeypatch.setattr(checkpoints, "write_bytes_synced", half_written_then_full)
    else:
        def full_on_rename(src, dst):
            raise ENOSPC
        monkeypatch.setattr(checkpoints.os, "replace", full_on_rename)
    with pytest.raises(checkpoints.CheckpointWriteError) as info:
        _end_epoch(callback, 1)
    monkeypatch.undo()
    assert info.value.errno == errno.ENOSPC
    assert (f"Could not write the checkpoint of epoch 2 {tmp_path}/checkpoints/"
            "epoch-0002.weights.h5 (the disk is full); no partial file was left, and the "
            "checkpoint of epoch 1 is intact.") in str(info.value)
    assert partial_files(tmp_path) == []
    assert [e for e, _ in checkpoints.list_checkpoints(tmp_path)] == [1]
    state = json.loads((tmp_path / "checkpoints" / "state.json").read_text())
    assert state["epochs_done"] == 1 and [r["epoch"] for r in state["history"]] == [1]
    assert checkpoints.restore_latest(model, tmp_path)[0] == 1


def test_disk_full_while_saving_the_model_leaves_no_keras_file(tmp_path, model, monkeypatch,
                                                               capsys):
    import common
    from kdkeras.training.trainer import save_model_atomic

    monkeypatch.setattr(type(model.student), "save", _half_written_then_full)
    with pytest.raises(SystemExit) as exit_info:
        common.run_cli(lambda: save_model_atomic(model.student, tmp_path / "model.keras"))
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: Could not write the model {tmp_path}/model.keras (the disk "
                          "is full); no partial file was left.")
    assert "Traceback" not in err and list(tmp_path.iterdir()) == []


def test_disk_full_while_writing_json_keeps_the_old_file(tmp_path, monkeypatch):
    import importlib

    provenance = importlib.import_module("kdkeras.training.provenance")  # the module
    target = tmp_path / "history.json"
    provenance.write_json_atomic(target, [{"epoch": 1}])

    def full(*args, **kwargs):
        raise ENOSPC

    monkeypatch.setattr(provenance.json, "dump", full)
    with pytest.raises(OSError) as info:
        provenance.write_json_atomic(target, [{"epoch": 1}, {"epoch": 2}])
    assert info.value.errno == errno.ENOSPC
    assert [p.name for p in tmp_path.iterdir()] == ["history.json"]
    assert json.loads(target.read_text()) == [{"epoch": 1}]


def _can_mount_tmpfs() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"],
                           capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _can_mount_tmpfs(), reason="needs `unshare -rm` to mount a tmpfs")
def test_a_real_full_disk_is_one_line_and_the_run_resumes(tmp_path):
    """The run on a 1 MB tmpfs: epoch 1's checkpoint (0.7 MB) fits, epoch 2's does not.

    Before the fix h5py raised from its finalisers and the process died of a
    segfault (exit 139), from the run and from its `--resume` alike.
    """
    driver = Path(__file__).resolve().parent / "fault_driver.py"
    mount = tmp_path / "disk"
    mount.mkdir()
    run = mount / "run"
    script = (f"mount -t tmpfs -o size=1m tmpfs {mount} || exit 99; "
              f"{sys.executable} {driver} {run} 2>&1; echo first-exit=$?; "
              f"{sys.executable} {driver} {run} --resume 2>&1; echo resume-exit=$?; "
              f"cd {run} && find . -type f | sort")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True,
                          text=True, timeout=600, env=env)
    out = proc.stdout
    assert "first-exit=1" in out and "resume-exit=1" in out, out[-4000:]
    assert "Resuming " in out and " after epoch 1/2." in out       # epoch 1 was intact
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert errors == 2 * [
        f"error: Could not write the checkpoint of epoch 2 {run}/checkpoints/"
        "epoch-0002.weights.h5 (the disk is full); no partial file was left, and the checkpoint "
        "of epoch 1 is intact. Free some space (or fix the error) and continue with --resume."]
    assert "Traceback" not in out and "h5py" not in out and "Segmentation" not in out
    files = out.split("resume-exit=1", 1)[1].split()
    assert "./checkpoints/epoch-0001.weights.h5" in files
    assert not any(Path(f).name.startswith("tmp-") or f.endswith(".tmp") for f in files), files
    assert "./checkpoints/epoch-0002.weights.h5" not in files and "./model.keras" not in files
