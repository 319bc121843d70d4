"""experiments/distill.py end to end on synthetic data: teachers trained first, the
student saved alone, and clear errors for wrong teachers or methods."""

import json
import subprocess
import sys
import textwrap

import pytest

from helpers import REPO, run_script

SMOKE = ["--preset=smoke", "--dataset=synthetic", "--epochs=1"]


@pytest.fixture(scope="module")
def distilled(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("distill") / "r8-ours"
    proc = run_script("distill.py", "--model=resnet8", "--teacher_model=resnet8",
                      "--train_teachers=2", "--method=ours", f"--workdir={workdir}", *SMOKE)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workdir


def test_teachers_are_trained_then_the_student_is_distilled(distilled):
    results = json.loads((distilled / "results.json").read_text())
    assert results["method"] == "ours" and len(results["teachers"]) == 2
    for k in range(2):
        teacher = json.loads((distilled / "teachers" / f"teacher-{k}" / "results.json").read_text())
        assert teacher["config"]["seed"] == k
    row = results["history"][0]
    for term in ("ce", "kl", "feature", "beta", "tau", "ce_grad_norm", "kd_grad_norm", "accuracy",
                 "val_accuracy"):
        assert term in row, term
    assert 0.0 < row["beta"] <= 1.0 and row["feature"] > 0 and row["kl"] > 0
    assert results["distill_config"]["cross_depth"] == 3
    assert results["provenance"]["dataset"] == "synthetic"


def test_student_opens_in_a_fresh_process_with_only_kdkeras(distilled):
    code = textwrap.dedent(f"""
        import kdkeras, keras, numpy as np
        m = keras.saving.load_model({str(distilled / 'student.keras')!r})
        names = [l.name for l in m.layers]
        assert m.name == "resnet8", m.name
        assert not any("adapter" in n or "teacher" in n for n in names), names
        print("OUT", m.predict(np.zeros((2, 32, 32, 3), "float32"), verbose=0).shape)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "OUT (2, 10)" in proc.stdout


def test_teacher_of_another_architecture_is_refused_before_training(distilled, tmp_path):
    teacher = distilled / "teachers" / "teacher-0" / "model.keras"   # a resnet8
    proc = run_script("distill.py", "--model=resnet8", "--teacher_model=resnet32",
                      f"--teachers={teacher}", f"--workdir={tmp_path / 'w'}", *SMOKE)
    assert proc.returncode == 2
    assert "holds a 'resnet8' model, but the run expects --teacher_model='resnet32'" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "w").exists()


@pytest.mark.parametrize("args, message", [
    (["--method=fitnet", "--train_teachers=1"], "Unknown method 'fitnet'. Valid methods:"),
    (["--teachers=/no/such/teacher.keras"], "/no/such/teacher.keras does not exist"),
    (["--method=ours"], "needs teachers"),
    (["--train_teachers=1", "--cross_depth=9"], "`depth` must be an int in 1..3 for 4 taps"),
])
def test_bad_distill_inputs_give_one_clear_error(tmp_path, args, message):
    proc = run_script("distill.py", "--model=resnet8", "--teacher_model=resnet8",
                      f"--workdir={tmp_path / 'w'}", *SMOKE, *args)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert message in proc.stderr and "Traceback" not in proc.stderr
    # Refused before anything was trained or written.
    assert not (tmp_path / "w" / "teachers").exists()


def test_a_finished_distillation_resumes_as_the_same_run(distilled):
    # Its config holds tuples (teachers, distill_options) that come back from
    # config.json as lists: --resume must still recognise the run and skip it.
    before = json.loads((distilled / "results.json").read_text())["history"]
    proc = run_script("distill.py", "--model=resnet8", "--teacher_model=resnet8",
                      "--train_teachers=2", "--method=ours", f"--workdir={distilled}",
                      "--resume", *SMOKE)
    assert proc.returncode == 0, proc.stderr[-2000:]
    after = json.loads((distilled / "results.json").read_text())["history"]
    assert after == before
