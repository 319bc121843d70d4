"""Every combination of the precision flags (--mixed_precision, --teacher_precision), the
strategy (--strategy) and the teacher source (--train_teachers / --teachers) of
experiments/distill.py either runs at smoke scale or is refused before any work with
one line. One process per strategy (devices are split before TensorFlow's first op)
runs its whole cross product through distill.py's own main()."""

import itertools
import json
import subprocess
import sys

import pytest

from helpers import REPO

MIXED = (None, "bfloat16", "float16")
TEACHER = ("float32", "bfloat16", "int8_ahead")
SOURCES = ("trained", "given")
STRATEGIES = ("default", "mirrored:2")
SMOKE = ["--dataset=synthetic", "--preset=smoke", "--train_subset=32", "--test_subset=16",
         "--batch_size=16", "--model=resnet8", "--teacher_model=resnet8", "--verbose=0"]


def refused(source, mixed, teacher) -> bool:
    """TFLite cannot convert teachers trained under mixed precision (int8_ahead)."""
    return source == "trained" and mixed is not None and teacher == "int8_ahead"


# Runs inside one fresh interpreter: every (source, mixed, teacher) of one strategy.
DRIVER = """
import io, itertools, json, sys, contextlib
sys.path.insert(0, "experiments")
from absl import flags
import distill
FLAGS = flags.FLAGS
FLAGS(["distill.py", *json.loads(sys.argv[1])])
import keras
import kdkeras
from kdkeras.training.strategy import prepare_devices
prepare_devices(FLAGS.strategy)  # before the first op below, as distill.py does before its own
tmp = sys.argv[2]
keras.utils.set_random_seed(0)
teacher = kdkeras.models.get("resnet8", num_classes=10, input_shape=(32, 32, 3),
                             input_normalization="unit")
teacher.save(f"{tmp}/teacher.keras")
results = {}
for source, mixed, teacher_precision in itertools.product(*json.loads(sys.argv[3])):
    keras.mixed_precision.set_global_policy("float32")
    FLAGS.mixed_precision, FLAGS.teacher_precision = mixed, teacher_precision
    FLAGS.train_teachers = 1 if source == "trained" else 0
    FLAGS.teachers = [] if source == "trained" else [f"{tmp}/teacher.keras"]
    FLAGS.workdir = f"{tmp}/{source}-{mixed}-{teacher_precision}"
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            distill.main(["distill.py"])
        code = 0
    except SystemExit as exit:
        code = exit.code
    except Exception as exc:  # a crash: reported, and the test fails on it
        code, err = "crash", io.StringIO(f"{type(exc).__name__}: {exc}")
    results[f"{source},{mixed},{teacher_precision}"] = [code, err.getvalue()]
print("RESULTS " + json.dumps(results))
"""


@pytest.mark.slow
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_each_flag_combination_runs_or_is_refused_before_work(strategy, tmp_path):
    grid = [SOURCES, MIXED, TEACHER]
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(SMOKE + [f"--strategy={strategy}"]),
         str(tmp_path), json.dumps(grid)],
        cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULTS "))
    results = json.loads(line[len("RESULTS "):])
    assert len(results) == len(list(itertools.product(*grid)))
    for source, mixed, teacher in itertools.product(*grid):
        code, err = results[f"{source},{mixed},{teacher}"]
        workdir = tmp_path / f"{source}-{mixed}-{teacher}"
        if refused(source, mixed, teacher):
            assert code == 2, (source, mixed, teacher, err[-2000:])
            assert err.count("\n") == 1 and err.startswith(
                "error: --teacher_precision=int8_ahead converts the teachers to TFLite"), err
            assert not workdir.exists()  # refused before any work
        else:
            assert code == 0, (source, mixed, teacher, err[-2000:])
            assert (workdir / "student.keras").exists()
