"""NaN injected into a teacher's output: the guard names the loss term, the epoch and
the step, stops the run and keeps the last good checkpoint; or, with
on_nonfinite="skip", really skips the update and counts it."""

import json
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from reliability_support import tiny_config, tiny_splits

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))


@pytest.fixture(scope="module")
def splits():
    return tiny_splits()


def _distiller(splits, method="ours"):
    from kdkeras.distill import Distiller, method_config
    from kdkeras.training.runs import build_model

    keras.utils.set_random_seed(0)
    teacher = build_model("resnet8", splits)
    return Distiller(build_model("resnet8", splits), [teacher], method_config(method))


def _poison(distiller, where):
    """Multiplies the teacher's logits or feature maps by a variable: 1, or NaN when injected."""
    factor = tf.Variable(1.0, trainable=False)
    original = distiller.teacher_outputs

    def teacher_outputs(x):
        outs = original(x)
        if where == "logits":
            return [[o[0] * factor] + o[1:] for o in outs]
        return [[o[0]] + [f * factor for f in o[1:]] for o in outs]

    object.__setattr__(distiller, "teacher_outputs", teacher_outputs)
    return factor


class _NaNAt(keras.callbacks.Callback):
    """Sets `factor` to NaN for the steps in `at` ((epoch, step), 1-based), else 1."""

    def __init__(self, factor, at):
        super().__init__()
        self.factor, self.at = factor, set(at)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1

    def on_train_batch_begin(self, batch, logs=None):
        self.factor.assign(np.nan if (self.epoch, batch + 1) in self.at else 1.0)


def _fit_in_run_dir(distiller, splits, workdir, callbacks=(), **overrides):
    from kdkeras.distill import Distiller
    from kdkeras.training.checkpoints import prepare_run_dir
    from kdkeras.training.trainer import fit_in_run_dir

    config = tiny_config(workdir, **overrides)
    run_dir = prepare_run_dir(workdir, config.to_dict(), resume=False, overwrite=False)
    fit = Distiller.fit

    def fit_with(self, *a, callbacks_=list(callbacks), callbacks=None, **kw):
        return fit(self, *a, callbacks=list(callbacks or []) + callbacks_, **kw)

    object.__setattr__(distiller, "fit", fit_with.__get__(distiller))
    return fit_in_run_dir(distiller, splits, config, run_dir, save_name="student.keras")


@pytest.mark.parametrize("where, term", [("logits", "kl"), ("features", "feature")])
def test_nan_in_a_teacher_stops_naming_term_epoch_and_step(tmp_path, splits, capsys, where, term):
    import common
    from kdkeras.training.checkpoints import list_checkpoints

    distiller = _distiller(splits)
    factor = _poison(distiller, where)
    workdir = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        common.run_cli(lambda: _fit_in_run_dir(distiller, splits, workdir,
                                               [_NaNAt(factor, [(2, 3)])]))
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert (f"stopped: Non-finite loss term '{term}' ({term}=nan) at epoch 2, step 3 of 4; "
            f"training stopped. The last complete epoch (1) is checkpointed in {workdir}/"
            "checkpoints; continue with --resume.") in err
    assert "Traceback" not in err
    # The last good checkpoint is kept, and nothing of the poisoned epoch was saved.
    assert [e for e, _ in list_checkpoints(workdir)] == [1]
    history = json.loads((workdir / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1] and np.isfinite(history[0]["loss"])
    assert not (workdir / "student.keras").exists()
    restored = _distiller(splits)
    restored.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True))
    restored.load_weights(list_checkpoints(workdir)[0][1])
    assert all(np.isfinite(w).all() for w in restored.get_weights())


def test_skip_policy_skips_and_counts_the_bad_step_and_finishes(tmp_path, splits, capsys):
    distiller = _distiller(splits)
    factor = _poison(distiller, "logits")
    workdir = tmp_path / "run"
    results = _fit_in_run_dir(distiller, splits, workdir, [_NaNAt(factor, [(2, 3)])],
                              on_nonfinite="skip")
    err = capsys.readouterr().err
    assert "kdkeras: skipped epoch 2, step 3: non-finite 'kl' (no update applied; " \
           "1 skipped so far)." in err
    assert [row["skipped_steps"] for row in results["history"]] == [0, 1]
    assert all(np.isfinite(row["loss"]) and np.isfinite(row["kl"]) for row in results["history"])
    student = keras.saving.load_model(workdir / "student.keras", compile=False)
    assert all(np.isfinite(w).all() for w in student.get_weights())


def test_a_skipped_step_changes_no_weight_and_no_optimizer_state(splits):
    """Every step NaN: nothing moves; after 3 in a row the guard stops the run."""
    from kdkeras.data import make_input_pipeline
    from kdkeras.training.guards import NonFiniteGuard

    distiller = _distiller(splits)
    factor = _poison(distiller, "logits")
    factor.assign(np.nan)
    distiller.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
                      on_nonfinite="skip")
    before = [v.numpy().copy() for v in distiller.variables]
    guard = NonFiniteGuard("skip", max_consecutive_skips=3)
    ds = make_input_pipeline(splits.train, training=True, batch_size=16, seed=0)
    distiller.fit(ds, epochs=1, callbacks=[guard], verbose=0)
    assert guard.skipped_total == 3 and guard.stopped is not None
    assert guard.stopped.terms == ("kl",) and (guard.stopped.epoch, guard.stopped.step) == (1, 3)
    assert "3 steps in a row had a non-finite 'kl' and were skipped at epoch 1, step 3" \
        in str(guard.stopped)
    assert int(distiller.optimizer.iterations.numpy()) == 0
    for v, old in zip(distiller.variables, before):   # weights, BatchNorm statistics
        np.testing.assert_array_equal(v.numpy(), old, err_msg=v.path)
    assert all(not np.any(v.numpy()) for v in distiller.optimizer.variables
               if "momentum" in v.path)


def test_skip_needs_a_distiller_and_the_policy_is_checked(splits):
    from kdkeras.training.config import TrainConfig
    from kdkeras.training.guards import NonFiniteGuard

    with pytest.raises(ValueError, match="on_nonfinite must be one of"):
        NonFiniteGuard("ignore")
    with pytest.raises(ValueError, match="on_nonfinite must be 'stop' or 'skip'"):
        TrainConfig(on_nonfinite="ignore")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="needs a kdkeras Distiller"):
        NonFiniteGuard("skip").set_model(model)
    # The skip policy reaches the step through compile; the guard must agree with it.
    distiller = _distiller(splits)
    distiller.compile(optimizer="sgd")
    with pytest.raises(ValueError, match=r"compiled with on_nonfinite='skip'\. Received: "
                                         r"on_nonfinite='stop'"):
        NonFiniteGuard("skip").set_model(distiller)
    distiller.compile(optimizer="sgd", on_nonfinite="skip")
    assert distiller.on_nonfinite == "skip" and distiller.nonfinite_skip is not None
    with pytest.raises(ValueError, match="compiled with on_nonfinite='stop'"):
        NonFiniteGuard("stop").set_model(distiller)
    with pytest.raises(ValueError, match="on_nonfinite must be one of"):
        distiller.compile(optimizer="sgd", on_nonfinite="ignore")
