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


# A value other than FSP's, per DistillConfig field but `method`: as a flag and as
# JSON. A field added to DistillConfig without a flag fails here (the keys must be its fields).
FIELD_VALUES = {
    "feature_loss": ("rkd", "rkd"), "cross_depth": ("=2", [2]), "gram_weight": ("0.5", 0.5),
    "gram_reduction": ("sum", "sum"), "pool": ("max", "max"), "use_kl": ("true", True),
    "temperature": ("2.5", 2.5), "kl_weight": ("0.25", 0.25), "ce_weight": ("0.75", 0.75),
    "feature_weight": ("2", 2.0), "beta_mode": ("inverted", "inverted"),
    "beta_terms": ("feature", "feature"), "epoch_origin": ("1", 1),
    "adapter_side": ("student", "student"), "always_adapt": ("true", True),
    "rkd_distance_weight": ("5", 5.0), "rkd_angle_weight": ("7", 7.0), "svd_k": ("2", 2),
    "fsp_mode": ("paper", "paper"), "init_stage_fraction": ("0.25", 0.25),
    "teacher_precision": ("bfloat16", "bfloat16"), "teacher_weighting": ("closest", "closest"),
    "ensemble_kl": ("kl_to_mean", "kl_to_mean"), "teacher_alignment": ("procrustes", "procrustes"),
}

# Parses each argument list with distill.py's flags, then resolves its DistillConfig.
SPEC_DRIVER = """
import dataclasses, json, sys
sys.path.insert(0, "experiments")
from absl import flags
import distill
from kdkeras.distill import method_config
results = {}
for name, args in json.loads(sys.argv[1]).items():
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["distill.py", *args])
    try:
        method, options = distill.distill_spec()
        config = dataclasses.asdict(method_config(method, **dict(options)))
        results[name] = {"method": method, "options": options, "config": config}
    except ValueError as err:
        results[name] = {"error": str(err)}
print("RESULTS " + json.dumps(results))
"""


def _specs(cases: dict) -> dict:
    proc = subprocess.run([sys.executable, "-c", SPEC_DRIVER, json.dumps(cases)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULTS "))
    return json.loads(line[len("RESULTS "):])


def test_every_distill_config_field_is_a_flag_and_a_json_field(tmp_path):
    import dataclasses

    from kdkeras.distill import DistillConfig, method_config

    fields = [f.name for f in dataclasses.fields(DistillConfig) if f.name != "method"]
    assert sorted(FIELD_VALUES) == sorted(fields)
    cases = {}
    for name, (flag, value) in FIELD_VALUES.items():
        assert getattr(method_config("fsp"), name) != value, name   # it changes something
        (tmp_path / f"{name}.json").write_text(json.dumps({name: value}))
        cases[f"flag {name}"] = ["--method=fsp", f"--{name}={flag}"]
        cases[f"json {name}"] = ["--method=fsp", f"--distill_config={tmp_path}/{name}.json"]
    cases["none"] = ["--method=p1_p2", "--feature_loss=none"]
    results = _specs(cases)
    for name, (_, value) in FIELD_VALUES.items():
        for how in ("flag", "json"):
            got = results[f"{how} {name}"]
            assert got.get("config", {}).get(name) == value, (how, name, got)
            assert got["options"] == [[name, value]] and got["method"] == "fsp"
    assert results["none"]["options"] == [["feature_loss", None]]


def test_a_table_row_and_a_cli_run_are_the_same_distillation(tmp_path):
    from kdkeras.reproduce import tables

    rows = {f"{n}: {r.label}": r for n, t in tables.TABLES.items() for r in t.rows
            if r.kind == tables.DISTILL}
    cases = {}
    for i, (key, row) in enumerate(rows.items()):
        (tmp_path / f"{i}.json").write_text(json.dumps({"method": row.method,
                                                        **dict(row.options)}))
        cases[key] = [f"--distill_config={tmp_path}/{i}.json", "--teacher_precision=float32"]
    results = _specs(cases)
    for key, row in rows.items():
        expected = json.loads(json.dumps([row.method, row.options]))
        assert [results[key]["method"], results[key]["options"]] == expected, key
    # A flag at its default is left out, as before the flag existed; a flag given wins.
    plain = _specs({"ours": ["--method=ours", "--teacher_weighting=mean", "--use_kl=true"]})
    assert plain["ours"]["options"] == [["use_kl", True]]


def test_bad_distill_configs_are_one_clear_error_before_any_work(tmp_path):
    files = {"unknown": {"method": "fsp", "cross_dept": 2, "temprature": 1.0},
             "type": {"use_kl": "no", "svd_k": 1.5, "cross_depth": [2]},
             "value": {"beta_mode": "sometimes"}, "list": [1, 2], "fsp": {"method": "fsp"}}
    for name, content in files.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(content))
    (tmp_path / "broken.json").write_text("{\"use_kl\": tru")
    cases = {name: [f"--distill_config={tmp_path}/{name}.json"] for name in [*files, "broken"]}
    cases["clash"] = [f"--distill_config={tmp_path}/fsp.json", "--method=ours"]
    results = _specs(cases)
    assert results["unknown"]["error"].endswith(
        "unknown DistillConfig field(s) ['cross_dept', 'temprature']. Valid fields: method, "
        "feature_loss, cross_depth, gram_weight, gram_reduction, pool, use_kl, temperature, "
        "kl_weight, ce_weight, feature_weight, beta_mode, beta_terms, epoch_origin, "
        "adapter_side, always_adapt, rkd_distance_weight, rkd_angle_weight, svd_k, fsp_mode, "
        "teacher_precision, teacher_weighting, ensemble_kl, teacher_alignment, "
        "init_stage_fraction.")
    assert results["type"]["error"] == (
        "DistillConfig: wrong type of use_kl='no' (expected bool), svd_k=1.5 (expected int).")
    assert results["value"]["error"].startswith("Invalid beta_mode='sometimes' in DistillConfig")
    assert "must hold a JSON object" in results["list"]["error"]
    assert "not a readable JSON file" in results["broken"]["error"]
    assert results["clash"]["error"] == ("--method=ours and --distill_config's method 'fsp' "
                                         "disagree: give one.")
    # Through the script: one line, exit status 2, nothing written.
    proc = run_script("distill.py", f"--distill_config={tmp_path}/type.json",
                      "--train_teachers=1", f"--workdir={tmp_path / 'w'}", *SMOKE)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr[-2000:]
    assert proc.stderr.startswith("error: DistillConfig: wrong type")
    assert not (tmp_path / "w").exists()
