"""The README's main job (experiments/main.py) at smoke scale: teachers, both students,
the comparison table, the saved student and the plot."""

import json

import keras

from helpers import run_script


def test_main_job_end_to_end_at_smoke_scale(tmp_path):
    proc = run_script("main.py", "--dataset=synthetic", "--preset=smoke", "--teacher_epochs=1",
                      "--student_epochs=1", "--train_subset=256", "--test_subset=128",
                      "--teacher_model=resnet8", "--num_teachers=2", f"--workdir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| student alone (resnet8) |" in proc.stdout
    assert "| distilled: P1+P2+P3+β, K=2 |" in proc.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(summary) == 4 and all(0.0 <= v["test_accuracy"] <= 1.0 for v in summary.values())
    assert (tmp_path / "curves.png").stat().st_size > 1000
    student = keras.saving.load_model(tmp_path / "ours" / "student.keras")
    assert student.name == "resnet8"
    ours = json.loads((tmp_path / "ours" / "results.json").read_text())
    assert len(ours["teachers"]) == 2 and ours["method"] == "ours"
