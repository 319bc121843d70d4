"""The table engine under JAX: rows trained together equal the rows trained apart,
and its step is the Distiller's own JAX step.

Runs under KERAS_BACKEND=jax only (`test_table_engine.py` starts that pytest
process from the TensorFlow suite); under any other backend it is skipped.

Smoke scale: ResNet-8 students and three ResNet-8 teachers (random weights, one
seed each) on 32 random 8×8×3 images of 4 classes, batch 8 (4 steps an epoch),
2 epochs with the learning rate ×0.1 after the first (so the epoch reaches β
and the schedule reaches the optimizer). The rows: the student alone, FSP with
K=1, ours with K=3, ours with K=3 and a student-side adapter per teacher, and a
student alone of another seed (its own initial weights and data order, as a
teacher of the offline ensemble is trained).

Tolerances. "Together" and "apart" run the same operations in different
compiled programs, which XLA may fuse differently. Measured here (JAX 0.10.2,
CPU, with either loop): together and apart agreed bit for bit (weights, BatchNorm statistics,
optimizer slots and logs after 8 steps); the engine's two steps against
`jax.jit(distiller.train_step)` agreed to 1.9e-6 absolute in the state and
1.7e-7 relative in the logs. The assertions allow 1e-5 (relative for logs,
absolute for the state, whose values are up to ~2), far below what the steps
move the weights (checked: over 1e-3).
"""

import keras
import numpy as np
import pytest

if keras.backend.backend() != "jax":
    pytest.skip("JAX-backend tests (run by test_table_engine.py under KERAS_BACKEND=jax)",
                allow_module_level=True)

import jax  # noqa: E402

from kdkeras import models  # noqa: E402
from kdkeras.training.config import DistillRunConfig, resolve_config  # noqa: E402
from kdkeras.training.runs import StudentRun  # noqa: E402
from kdkeras.training.table_engine import TableEngine  # noqa: E402
from kdkeras.training.table_rows import build_rows, teacher_rows  # noqa: E402

SHAPE, CLASSES, N, BATCH, EPOCHS = (8, 8, 3), 4, 32, 8, 2
STATS = None   # the models normalise their own pixels (kdkeras.models.InputNormalization)
RUNS = (StudentRun("student", "student"),
        StudentRun("fsp-k1", "fsp", (), 1),
        StudentRun("ours-k3", "ours", (), 3),
        StudentRun("ours-student_adapters-k3", "ours",
                   (("adapter_side", "student"), ("always_adapt", True)), 3))
OTHER_SEED = 1
TOL = 1e-5


def _learning_rate_at(epoch):
    return 0.05 * 0.1 ** epoch


@pytest.fixture(scope="module")
def setting():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (N,) + SHAPE, dtype=np.uint8)
    labels = rng.integers(0, CLASSES, N).astype(np.int32)
    teachers = []
    for k in range(3):
        keras.utils.set_random_seed(100 + k)
        teachers.append(models.get("resnet8", num_classes=CLASSES, input_shape=SHAPE))
    config = resolve_config(DistillRunConfig, "smoke", dataset="cifar10_jpeg", model="resnet8",
                            batch_size=BATCH, seed=0)
    return images, labels, teachers, config


def _rows(setting, runs=RUNS, other_seed=True):
    images, labels, teachers, config = setting
    rows = build_rows(runs, teachers, config, num_classes=CLASSES, input_shape=SHAPE)
    if other_seed:
        rows += teacher_rows(config, [OTHER_SEED], num_classes=CLASSES, input_shape=SHAPE)
    return rows


def _engine(setting, rows):
    images, labels, _, _ = setting
    return TableEngine(rows, images, labels, batch_size=BATCH,
                       learning_rate_at=_learning_rate_at, stats=STATS,
                       test_images=images[:20], test_labels=labels[:20])


@pytest.fixture(scope="module")
def together(setting):
    engine = _engine(setting, _rows(setting))
    history = engine.fit(EPOCHS, verbose=False)
    return engine, history


@pytest.fixture(scope="module")
def apart(setting):
    results = {}
    for run in RUNS:
        engine = _engine(setting, _rows(setting, [run], other_seed=False))
        results[engine.rows[0].name] = (engine, engine.fit(EPOCHS, verbose=False))
    engine = _engine(setting, _rows(setting, [], other_seed=True))
    results[engine.rows[0].name] = (engine, engine.fit(EPOCHS, verbose=False))
    return results


def test_each_teacher_runs_once_per_batch_and_the_table_compiles_once(together):
    engine, _ = together
    # Apart, the rows would run 0 + 1 + 3 + 3 + 0 = 7 teacher forwards a batch.
    assert engine.teacher_forwards_per_batch() == 3
    assert engine.loop == "steps"   # on CPU
    assert [k for k in engine.compile_seconds if k[0] == "train"] == [("train", 1)]


@pytest.mark.parametrize("group", [0, 1, 2], ids=["trainable", "frozen", "optimizer"])
def test_rows_trained_together_end_with_the_weights_of_rows_trained_apart(together, apart, group):
    engine, _ = together
    for r, row in enumerate(engine.rows):
        alone, _ = apart[row.name]
        ours, theirs = engine.state["rows"][r][group], alone.state["rows"][0][group]
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=TOL,
                                       err_msg=row.name)
        if group == 0:  # and training moved them
            start = [v.value for v in row.distiller.trainable_variables]
            moved = max(float(np.max(np.abs(np.asarray(a) - np.asarray(s))))
                        for a, s in zip(ours, start))
            assert moved > 100 * TOL, row.name


def test_rows_trained_together_log_what_rows_trained_apart_log(together, apart):
    engine, history = together
    for row in engine.rows:
        _, alone = apart[row.name]
        assert len(history[row.name]) == len(alone[row.name]) == EPOCHS
        for ours, theirs in zip(history[row.name], alone[row.name]):
            assert set(ours) == set(theirs)
            for key, value in ours.items():
                if key != "seconds":
                    np.testing.assert_allclose(value, theirs[key], rtol=TOL, atol=1e-7,
                                               err_msg=f"{row.name} {key}")
    # The logs are the rows' own: β acts in ours, not in FSP (β off) or the student.
    last = {name: h[-1] for name, h in history.items()}
    assert last["ours-k3-s0"]["kd_scale"] < 1.0 and last["fsp-k1-s0"]["kd_scale"] == 1.0
    assert "beta" not in last["student-s0"] and last["teacher-1"]["learning_rate"] == pytest.approx(0.005)


def test_another_seed_gets_its_own_batches(together):
    engine, _ = together
    x0, y0 = engine.batch(0, 0, 0)
    x1, y1 = engine.batch(OTHER_SEED, 0, 0)
    assert not np.array_equal(np.asarray(y0), np.asarray(y1)) or not np.allclose(x0, x1)
    again, _ = engine.batch(0, 0, 0)
    np.testing.assert_array_equal(np.asarray(x0), np.asarray(again))


def _distiller_state(d):
    return tuple([v.value for v in group] for group in (
        d.trainable_variables, d.non_trainable_variables, d.optimizer.variables,
        d.metrics_variables))


def test_engine_steps_are_the_distillers_jax_steps(setting):
    """Two engine steps of epoch 1 against `jax.jit(distiller.train_step)` on the same batches."""
    epoch, steps = 1, 2
    engine = _engine(setting, _rows(setting, other_seed=False))
    logs = jax.device_get(engine.run_steps(epoch, steps))
    for r, row in enumerate(_rows(setting, other_seed=False)):  # fresh, identical rows
        d = row.distiller
        d.epoch.assign(float(epoch))                    # what Distiller.fit's callback does
        d.optimizer.learning_rate.assign(_learning_rate_at(epoch))   # LearningRateScheduler
        state = _distiller_state(d)
        step = jax.jit(d.train_step)
        for i in range(steps):
            step_logs, state = step(state, engine.batch(row.seed, epoch, i))
            for key, value in step_logs.items():
                np.testing.assert_allclose(logs[r][key][i], np.asarray(value), rtol=TOL,
                                           atol=1e-7, err_msg=f"{row.name} step {i} {key}")
        ours = engine.state["rows"][r]
        layout = engine._layout[r]
        theirs = (state[0], [state[1][i] for i in layout["own"]], state[2], state[3])
        for group, (a_list, b_list) in enumerate(zip(ours, theirs)):
            for a, b in zip(a_list, b_list):
                # Metric accumulators (group 3) are running sums: compare them relatively.
                np.testing.assert_allclose(np.asarray(a), np.asarray(b),
                                           rtol=TOL if group == 3 else 0,
                                           atol=0 if group == 3 else TOL,
                                           err_msg=f"{row.name} group {group}")


def test_a_row_without_taps_reads_its_logits_from_a_tapped_forward(setting):
    """Hinton KD (no taps) and FSP (taps) of one teacher: one forward, and Hinton's step is
    still the Distiller's (whose own teacher view has no taps)."""
    runs = (StudentRun("hinton-k1", "hinton", (), 1), StudentRun("fsp-k1", "fsp", (), 1))
    engine = _engine(setting, _rows(setting, runs, other_seed=False))
    assert engine.teacher_forwards_per_batch() == 1
    logs = jax.device_get(engine.run_steps(0, 1))
    d = _rows(setting, runs[:1], other_seed=False)[0].distiller
    d.optimizer.learning_rate.assign(_learning_rate_at(0))
    step_logs, state = jax.jit(d.train_step)(_distiller_state(d), engine.batch(0, 0, 0))
    for key in ("loss", "ce", "kl"):
        np.testing.assert_allclose(logs[0][key][0], np.asarray(step_logs[key]), rtol=TOL)
    for a, b in zip(engine.state["rows"][0][0], state[0]):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=TOL)


def test_an_epoch_as_one_scanned_program_equals_one_program_per_step(setting):
    """The GPU's default loop ("scan") against the CPU's ("steps"): the same epoch."""
    images, labels, _, _ = setting
    results = []
    for loop in ("scan", "steps"):
        engine = TableEngine(_rows(setting, RUNS[1:3], other_seed=False), images, labels,
                             batch_size=BATCH, learning_rate_at=_learning_rate_at,
                             stats=STATS, loop=loop)
        results.append((engine, jax.device_get(engine.run_steps(1, N // BATCH))))
    (scanned, scan_logs), (stepped, step_logs) = results
    assert [k for k in scanned.compile_seconds if k[0] == "train"] == [("train", N // BATCH)]
    for r in range(2):
        for key, values in scan_logs[r].items():
            np.testing.assert_allclose(values, step_logs[r][key], rtol=TOL, atol=1e-7)
        for a_list, b_list in zip(scanned.state["rows"][r], stepped.state["rows"][r]):
            for a, b in zip(a_list, b_list):
                np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=TOL)


def test_write_back_puts_the_trained_state_in_the_keras_variables(setting):
    engine = _engine(setting, _rows(setting, RUNS[:1], other_seed=False))
    engine.run_steps(0, 1)
    engine.write_back()
    d = engine.rows[0].distiller
    for v, value in zip(d.trainable_variables, engine.state["rows"][0][0]):
        np.testing.assert_array_equal(np.asarray(v.value), np.asarray(value))
    assert int(d.optimizer.iterations.value) == 1


def test_bad_rows_are_refused_before_any_work(setting):
    images, labels, _, config = setting
    rows = _rows(setting, RUNS[:1], other_seed=False)
    with pytest.raises(ValueError, match="distinct"):
        TableEngine(rows + rows, images, labels, batch_size=BATCH, learning_rate_at=float)
    with pytest.raises(ValueError, match="batch_size"):
        TableEngine(rows, images, labels, batch_size=N + 1, learning_rate_at=float)
    with pytest.raises(ValueError, match="uint8"):
        TableEngine(rows, images.astype(np.float32), labels, batch_size=BATCH,
                    learning_rate_at=float)
    engine = TableEngine(rows, images, labels, batch_size=BATCH, learning_rate_at=float)
    with pytest.raises(ValueError, match="outside the epoch"):
        engine.run_steps(0, num_steps=2, first_step=N // BATCH - 1)
