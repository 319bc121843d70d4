"""Outputs (issue 21, rows 4, 7, 8, 9): unwritable folders refused before work with one
line; `export.py` on a corrupt model file or data of another class count; a
failed reproduction never replaces a better table file."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from helpers import REPO

CAN_UNSHARE = shutil.which("unshare") is not None and subprocess.run(
    ["unshare", "-rm", "true"], capture_output=True).returncode == 0


def _script(script, *args, read_only=None):
    """experiments/<script> in a fresh process; `read_only`: a folder it sees read-only.

    As root, permissions do not stop writes: the folder is then a read-only
    tmpfs mounted over it in a private mount namespace (`unshare`).
    """
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    argv = [sys.executable, str(REPO / "experiments" / script), *args]
    if read_only is not None:
        read_only.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            read_only.chmod(0o555)
        elif CAN_UNSHARE:
            argv = ["unshare", "-rm", "sh", "-c",
                    f"mount -t tmpfs -o ro tmpfs {read_only} && exec \"$@\"", "sh", *argv]
        else:
            pytest.skip("root without unshare: no way to make a folder read-only")
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)


def _one_error(proc, code=2) -> str:
    assert proc.returncode == code, proc.stdout[-2000:] + proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return errors[0]


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    """A saved 3-class 8x8 student, and an image folder of 2 classes of 8x8 images."""
    import tensorflow as tf

    from kdkeras import models

    root = tmp_path_factory.mktemp("export")
    path = root / "student.keras"
    models.get("resnet8", num_classes=3, input_shape=(8, 8, 3)).save(path)
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for label in ("cat", "dog"):
            folder = root / "images" / split / label
            folder.mkdir(parents=True)
            for k in range(2):
                pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
                (folder / f"{k}.jpg").write_bytes(tf.io.encode_jpeg(pixels).numpy())
    return path, root / "images"


def test_export_of_a_corrupt_model_file_says_so_not_file_not_found(tmp_path, student):
    bad = tmp_path / "student.keras"
    bad.write_bytes(student[0].read_bytes()[:500])           # a truncated copy
    err = _one_error(_script("export.py", f"--model_path={bad}", f"--out_dir={tmp_path / 'out'}"))
    assert err.startswith(f"error: Model file {bad} is not a .keras archive (a .keras file is a "
                          "zip; this one is corrupt, truncated or of another format, 500 bytes)")
    assert "not found" not in err.lower() and not (tmp_path / "out").exists()


def test_export_on_data_of_another_class_count_is_refused(tmp_path, student):
    path, images = student
    err = _one_error(_script("export.py", f"--model_path={path}", f"--out_dir={tmp_path / 'out'}",
                             "--dataset=image_folder", f"--data_dir={images}"))
    assert err == ("error: The model predicts 3 classes but the check dataset 'image_folder' "
                   "has 2: its accuracy there would mean nothing. Pass --dataset/--data_dir of "
                   "the data the model was trained on.")
    assert not (tmp_path / "out" / "saved_model").exists()


def test_export_to_a_read_only_out_dir_is_one_line_before_work(tmp_path, student):
    out = tmp_path / "out"
    err = _one_error(_script("export.py", f"--model_path={student[0]}", f"--out_dir={out}",
                             read_only=out))
    assert err.startswith(f"error: --out_dir={out} cannot be written ({out}: ")
    assert "Choose another --out_dir, or make it writable." in err


def test_reproduce_to_a_read_only_results_dir_is_one_line_before_any_run(tmp_path):
    results = tmp_path / "results"
    proc = _script("reproduce.py", "--table=2", "--preset=smoke",
                   f"--runs_dir={tmp_path / 'runs'}", f"--results_dir={results}",
                   read_only=results)
    err = _one_error(proc)
    assert err.startswith(f"error: --results_dir={results} cannot be written ({results}: ")
    assert "  run " not in proc.stdout and not (tmp_path / "runs").exists()


def test_a_read_only_workdir_is_one_line_before_work(tmp_path):
    workdir = tmp_path / "run"
    proc = _script("train.py", "--preset=smoke", "--dataset=synthetic", f"--workdir={workdir}",
                   read_only=workdir)
    err = _one_error(proc)
    assert err.startswith(f"error: --workdir={workdir} cannot be written ({workdir}: ")


def _record(statuses):
    return {"table": 2, "status": "complete" if set(statuses) == {"ok"} else "partial",
            "rows": [{"label": f"row {i}", "status": s} for i, s in enumerate(statuses)]}


def test_a_table_file_is_never_replaced_by_a_record_that_lost_finished_rows(tmp_path):
    """The engine writes every table through this (`kdkeras.reproduce.engine`)."""
    from kdkeras.reporting.tables_io import write_table_record

    path, rejected = tmp_path / "results" / "table_2.json", tmp_path / "runs" / "rejected"
    complete = _record(["ok", "ok", "ok"])
    assert write_table_record(path, complete, rejected) == (path, True)
    failed = _record(["ok", "error", "missing"])     # e.g. a crash in two rows
    assert write_table_record(path, failed, rejected) == (rejected / "table_2.json", False)
    assert json.loads(path.read_text()) == complete
    assert json.loads((rejected / "table_2.json").read_text()) == failed
    assert write_table_record(path, failed) == (path, False)     # no rejected_dir: kept too
    better = _record(["ok", "ok", "ok"]) | {"note": "a rerun"}
    assert write_table_record(path, better, rejected) == (path, True)
    assert json.loads(path.read_text()) == better
    path.write_text("{ truncated")                      # an unreadable file holds nothing
    assert write_table_record(path, failed, rejected) == (path, True)
