"""Every bad input of issue 7 is refused before any training, with one clear line.

Each case runs a library entry point through `experiments/common.run_cli` (what
`train.py` and `distill.py` do) and checks: exit status 2, a single line
`error: ...` that says what is wrong and what was received, no traceback, and,
for whole runs, no run directory left behind."""

import math
import sys
from pathlib import Path

import keras
import pytest

from reliability_support import tiny_config, tiny_splits

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))


@pytest.fixture(scope="module")
def splits():
    return tiny_splits()


@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
    """Saved teacher files: a good one, and ones of another class count and architecture."""
    from kdkeras import models

    root = tmp_path_factory.mktemp("teachers")
    shape = (16, 16, 3)
    files = {
        "resnet8": models.get("resnet8", num_classes=4, input_shape=shape),
        "resnet8_5_classes": models.get("resnet8", num_classes=5, input_shape=shape),
        "resnet8_48x48": models.get("resnet8", num_classes=4, input_shape=(48, 48, 3)),
    }
    paths = {}
    for name, model in files.items():
        paths[name] = root / f"{name}.keras"
        model.save(paths[name])
    paths["garbage"] = root / "garbage.keras"
    paths["garbage"].write_bytes(b"\x00not a keras zip\xff" * 64)
    paths["missing"] = root / "missing.keras"
    return paths


def _distill_config(workdir, **overrides):
    from kdkeras.training.config import DistillRunConfig

    base = tiny_config(workdir).to_dict()
    base.update(teacher_model="resnet8", method="ours")
    base.update(overrides)
    return DistillRunConfig(**base)


def _distiller(splits, teachers=None, **kwargs):
    from kdkeras import models
    from kdkeras.distill import Distiller, method_config

    student = models.get("resnet8", num_classes=4, input_shape=(16, 16, 3))
    if teachers is None:
        teachers = [models.get("resnet8", num_classes=4, input_shape=(16, 16, 3))]
    method = kwargs.pop("method", "ours")
    options = kwargs.pop("options", {})
    return Distiller(student, teachers, method_config(method, **options), **kwargs)


def _train(w, s, **kw):
    from kdkeras.training.runs import train_model

    return train_model(tiny_config(w, **kw), s)


def _distill(w, s, **kw):
    from kdkeras.training.runs import distill_model

    return distill_model(_distill_config(w, **kw), s)


def _resnet32_teacher():
    from kdkeras import models

    return models.get("resnet32", num_classes=4, input_shape=(16, 16, 3))


def _config(**kw):
    from kdkeras.training.config import TrainConfig

    return TrainConfig(**kw)


def _preset(name):
    from kdkeras.training.config import TrainConfig, resolve_config

    return resolve_config(TrainConfig, name, "synthetic")


def _method(name, **options):
    from kdkeras.distill import method_config

    return method_config(name, **options)


# (id, call(workdir, splits, teacher paths), expected text, whether a run dir may exist)
CASES = [
    ("unknown model", lambda w, s, t: _train(w, s, model="resnet7"),
     "Unknown model 'resnet7'. Valid names: vgg11, vgg6, resnet32"),
    ("unknown teacher model", lambda w, s, t: _distill(w, s, teacher_model="resnet7",
                                                       train_teachers=1),
     "Unknown model 'resnet7'"),
    ("unknown method", lambda w, s, t: _distill(w, s, method="fitnet", train_teachers=1),
     "Unknown method 'fitnet'. Valid methods: student, hinton, fsp"),
    ("unknown preset", lambda w, s, t: _preset("huge"),
     "Unknown preset 'huge'. Valid presets: paper, fast, demo, smoke."),
    ("teacher checkpoint missing", lambda w, s, t: _distill(w, s, teachers=(str(t["missing"]),)),
     "missing.keras does not exist. Train one with experiments/train.py"),
    ("teacher checkpoint unreadable", lambda w, s, t: _distill(w, s,
                                                               teachers=(str(t["garbage"]),)),
     "garbage.keras could not be read as a Keras model"),
    ("teacher of another architecture",
     lambda w, s, t: _distill(w, s, teacher_model="resnet32", teachers=(str(t["resnet8"]),)),
     "holds a 'resnet8' model, but the run expects --teacher_model='resnet32'"),
    ("teacher of another class count",
     lambda w, s, t: _distill(w, s, teachers=(str(t["resnet8_5_classes"]),)),
     "resnet8_5_classes.keras predicts 5 classes but the dataset has 4"),
    ("teachers of different architectures",
     lambda w, s, t: _distiller(s, [keras.saving.load_model(t["resnet8"]), _resnet32_teacher()]),
     "Teachers 0 (resnet8, 75,380 parameters) and 1 (resnet32, 466,036 parameters) have "
     "different architectures; the K teachers must be an ensemble of one architecture (P3)"),
    ("tap name that does not exist",
     lambda w, s, t: _distiller(s, student_taps=["tap_stem", "tap_stage9"]),
     "Model 'resnet8' has no layer(s) ['tap_stage9']. Its 'tap_*' layers are: ['tap_stem'"),
    ("Gram pair whose sizes cannot be matched",
     lambda w, s, t: _distiller(s, student_taps=["tap_stage3", "gap"],
                                teacher_taps=["tap_stage3", "gap"], options={"cross_depth": 1}),
     "Tap 'gap' of the teacher 'resnet8' has shape (None, 64), but feature taps must be "
     "(batch, height, width, channels) maps of known height and width"),
    ("cross depth the taps cannot reach",
     lambda w, s, t: _distiller(s, options={"cross_depth": 9}),
     "`depth` must be an int in 1..3 for 4 taps"),
    ("K < 1: negative", lambda w, s, t: _distill_config(w, train_teachers=-1),
     "train_teachers must be >= 0. Received: train_teachers=-1."),
    ("K < 1: no teachers for a KD method", lambda w, s, t: _distill(w, s),
     "Method 'ours' needs teachers: pass --teachers=PATHS or --train_teachers=K."),
    ("K < 1: Distiller without teachers", lambda w, s, t: _distiller(s, []),
     "Method 'ours' distils from teachers, but none were given."),
    ("negative learning rate", lambda w, s, t: _config(learning_rate=-0.1),
     "learning_rate must be a finite non-negative number. Received: learning_rate=-0.1."),
    ("NaN weight decay", lambda w, s, t: _config(weight_decay=math.nan),
     "weight_decay must be a finite non-negative number. Received: weight_decay=nan."),
    ("infinite momentum", lambda w, s, t: _config(momentum=math.inf),
     "momentum must be a finite non-negative number. Received: momentum=inf."),
    ("zero epochs", lambda w, s, t: _config(epochs=0),
     "epochs must be a positive integer. Received: epochs=0."),
    ("negative Gram weight", lambda w, s, t: _method("ours", gram_weight=-1.0),
     "DistillConfig.gram_weight must be a non-negative number. Received: gram_weight=-1.0."),
    ("NaN temperature", lambda w, s, t: _method("hinton", temperature=math.nan),
     "DistillConfig.temperature must be a non-negative number. Received: temperature=nan."),
    ("NaN weight decay in the Distiller", lambda w, s, t: _distiller(s, weight_decay=math.nan),
     "weight_decay must be >= 0. Received: weight_decay=nan."),
    ("batch larger than the data", lambda w, s, t: _train(w, s, batch_size=128),
     "batch_size=128 is larger than the training data (64 examples). Lower --batch_size"),
    # Issue 21: errors that came after the run directory was made, and silent acceptances.
    ("negative seed", lambda w, s, t: _train(w, s, seed=-1),
     "--seed must be an integer in 0..4294967295. Received: --seed=-1."),
    ("momentum above 1", lambda w, s, t: _train(w, s, momentum=5.0),
     "--momentum must lie in [0, 1] (the paper's is 0.9). Received: --momentum=5.0."),
    ("teacher built for other inputs",
     lambda w, s, t: _distill(w, s, teachers=(str(t["resnet8_48x48"]),)),
     "resnet8_48x48.keras takes inputs of shape (48, 48, 3), but the run's images are "
     "(16, 16, 3)"),
    ("empty entry in --teachers",
     lambda w, s, t: _distill(w, s, teachers=(str(t["resnet8"]), "", str(t["resnet8"]))),
     "--teachers has an empty entry (position 2 of 3:"),
    ("the same teacher checkpoint twice",
     lambda w, s, t: _distill(w, s, teachers=(str(t["resnet8"]), str(t["resnet8"]))),
     "--teachers gives the same checkpoint twice (entries 1 and 2: "),
    ("the student among its teachers",
     lambda w, s, t: _distiller_of_student_and_itself(),
     "Teacher 0 (resnet8) is the student itself (or shares its weights): teachers are "
     "frozen, so the student would not train."),
    ("one teacher model given twice",
     lambda w, s, t: _distiller(s, [_resnet8_teacher()] * 2),
     "Teachers 0 and 1 are the same model (resnet8); K copies of one teacher distil as that "
     "one teacher does"),
    ("infinite Gram weight", lambda w, s, t: _method("ours", gram_weight=math.inf),
     "DistillConfig.gram_weight must be finite. Received: gram_weight=inf."),
    ("infinite temperature", lambda w, s, t: _method("hinton", temperature=math.inf),
     "DistillConfig.temperature must be finite. Received: temperature=inf."),
    ("mistyped switches", lambda w, s, t: _method("ours", use_kl=1, epoch_origin=True,
                                                   temperature="2", feature_loss=3),
     "DistillConfig: wrong type of feature_loss=3 (expected str or None), use_kl=1 (expected "
     "bool), temperature='2' (expected float), epoch_origin=True (expected int)."),
    ("workdir that is a file", lambda w, s, t: _train(_a_file(w), s),
     "is a file, not a folder. Choose another --workdir."),
    ("workdir under a file", lambda w, s, t: _train(_a_file(w) / "run", s),
     "cannot be made:"),
]


def _a_file(workdir):
    """A file where the run directory's parent would go (the test checks `workdir` stays absent)."""
    path = workdir.parent / "a-file"
    path.write_text("not a folder")
    return path


def _resnet8_teacher():
    from kdkeras import models

    return models.get("resnet8", num_classes=4, input_shape=(16, 16, 3))


def _distiller_of_student_and_itself():
    from kdkeras.distill import Distiller, method_config

    student = _resnet8_teacher()
    return Distiller(student, [student], method_config("ours"))


@pytest.mark.parametrize("call, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gives_one_clear_error_before_any_work(tmp_path, splits, teachers, capsys,
                                                        call, message):
    import common

    workdir = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        common.run_cli(lambda: call(workdir, splits, teachers))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err
    assert "Traceback" not in err
    assert not workdir.exists()   # refused before a run directory was made


def test_run_directory_holding_another_run_is_refused(tmp_path, splits, capsys):
    import common
    from kdkeras.training.checkpoints import prepare_run_dir

    workdir = tmp_path / "run"
    prepare_run_dir(workdir, tiny_config(workdir).to_dict(), resume=False, overwrite=False)
    for overrides, message in [
        ({}, f"{workdir} already holds a run. Pass --resume to continue it or --overwrite "
             "to replace it, or choose another --workdir."),
        ({"resume": True, "learning_rate": 0.2},
         f"--resume: {workdir} holds a different run (differs in ['learning_rate']). Use "
         "another --workdir, or --overwrite to start again."),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            common.run_cli(lambda: _train(workdir, splits, **overrides))
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    assert sorted(p.name for p in workdir.iterdir()) == ["config.json"]   # untouched


def test_resume_accepts_a_run_from_before_a_field_was_added_only_at_its_default(tmp_path):
    import json

    from kdkeras.training.checkpoints import RunDirError, field_defaults, prepare_run_dir
    from kdkeras.training.config import DistillRunConfig, resolve_config

    workdir = tmp_path / "run"
    config = resolve_config(DistillRunConfig, "smoke", dataset="synthetic", workdir=str(workdir))
    prepare_run_dir(workdir, config.to_dict(), resume=False, overwrite=False)
    stored = json.loads((workdir / "config.json").read_text())
    del stored["distill_options"]  # as a run started before the field existed
    (workdir / "config.json").write_text(json.dumps(stored))
    prepare_run_dir(workdir, config.to_dict(), resume=True, overwrite=False,
                    defaults=field_defaults(config))
    assert "distill_options" in json.loads((workdir / "config.json").read_text())  # rewritten
    (workdir / "config.json").write_text(json.dumps(stored))
    changed = config.to_dict() | {"distill_options": (("cross_depth", 2),)}
    with pytest.raises(RunDirError, match=r"differs in \['distill_options'\]"):
        prepare_run_dir(workdir, changed, resume=True, overwrite=False,
                        defaults=field_defaults(config))
    # Without the defaults every added field is a difference, as before.
    with pytest.raises(RunDirError, match=r"differs in \['distill_options'\]"):
        prepare_run_dir(workdir, config.to_dict(), resume=True, overwrite=False)
