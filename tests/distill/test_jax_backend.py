"""kdkeras on the JAX backend, checked from the TensorFlow suite.

* The backend-neutral suites (losses, the β rule, the JAX step, the numpy data
  path) pass in a second pytest process with KERAS_BACKEND=jax.
* The TensorFlow and JAX train steps agree on the same weights and batches:
  losses, β and the updated weights, BatchNorm statistics and optimizer slots.
* Files saved under one backend load under the other and predict the same.
* Under JAX, importing kdkeras and taking a step never imports TensorFlow
  (the GPU machine has none).

Each backend runs in its own process (Keras fixes the backend at import): the
one this process runs in-process, the other through this very file run as a
script (`python test_jax_backend.py <dir>`; see `_side`). They exchange
weights, batches and results as `.npz` files.

Tolerances. Measured here (float32; TensorFlow 2.21 with oneDNN against JAX
0.10 with XLA, on CPU; ResNet-8 student, two teachers, adapters, two steps):
losses, norms, τ and β differ by at most 3.6e-7 relative; the updated weights
by 1.2e-7, BatchNorm statistics by 2.4e-7 and momentum slots by 2e-8 absolute
(values up to ~2); the logits of a student file loaded under the other backend
by 1.2e-6 (logits up to ~3); a Distiller checkpoint reloads bit-exactly. The
assertions allow 1e-5 relative (losses, β) and 1e-5 absolute (weights,
logits): 8-40x above what was seen, and far below what the two steps move the
weights (0.12 here).
"""

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
OTHER = {"tensorflow": "jax", "jax": "tensorflow"}
STEPS = 2
LOG_KEYS = ("loss", "ce", "kl", "feature", "beta", "tau", "ce_grad_norm", "kd_grad_norm",
            "kd_scale", "accuracy")
JAX_SUITE = ("tests/losses", "tests/distill/test_beta_rule.py",
             "tests/distill/test_distiller_step_jax.py", "tests/data/test_numpy_data_jax.py")


def _env(backend, **extra):
    return dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3",
                PYTHONUNBUFFERED="1", **extra)


def _python(code_or_args, backend, timeout=600, block_tensorflow=False):
    """Runs Python in a fresh process on `backend`; TensorFlow can be made unimportable."""
    args = list(code_or_args) if not isinstance(code_or_args, str) else ["-c", code_or_args]
    if block_tensorflow:  # `import tensorflow` raises ImportError, as on the GPU machine
        prelude = "import sys, runpy; sys.modules['tensorflow'] = None; "
        if args[0] == "-c":
            args = ["-c", prelude + args[1]]
        else:
            args = ["-c", prelude + f"sys.argv = {args!r}; runpy.run_path({args[0]!r}, "
                    "run_name='__main__')"]
    return subprocess.run([sys.executable, *args], cwd=REPO, env=_env(backend),
                          capture_output=True, text=True, timeout=timeout)


# --- what each backend does (in this process or in the other) -----------------
def _distiller():
    from kdkeras import models
    from kdkeras.distill import Distiller, method_config

    def net():
        return models.get("resnet8", num_classes=4, input_shape=(8, 8, 3))

    # Two teachers, adapters on every tap, β with the paper's rule, coupled weight
    # decay and Nesterov momentum: every part of the step is exercised.
    d = Distiller(net(), [net(), net()], method_config("ours", always_adapt=True),
                  weight_decay=1e-3)
    d.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True))
    d.optimizer.build(d.trainable_variables)
    return d


def _arrays(variables):
    return [keras.ops.convert_to_numpy(v) for v in variables]


def _snapshot(d):
    return {"trainable": _arrays(d.trainable_variables),
            "non_trainable": _arrays(d.non_trainable_variables),
            "optimizer": _arrays(d.optimizer.variables)}


def _save_npz(path, **groups):
    flat = {}
    for name, value in groups.items():
        if isinstance(value, list):
            flat.update({f"{name}/{i:03d}": v for i, v in enumerate(value)})
        else:
            flat[name] = value
    np.savez(path, **flat)


def _load_npz(path):
    with np.load(path) as f:
        out = {}
        for key in sorted(f.files):
            name, _, index = key.partition("/")
            if index:
                out.setdefault(name, []).append(f[key])
            else:
                out[name] = f[key]
    return out


def _set(variables, values):
    assert len(variables) == len(values)
    for v, value in zip(variables, values):
        assert tuple(v.shape) == value.shape, (v.path, v.shape, value.shape)
        v.assign(value)


def _steps(d, batches):
    """`STEPS` train steps the way the backend's trainer takes them; logs per step."""
    logs = []
    if keras.backend.backend() == "jax":
        import jax

        step = jax.jit(d.train_step)
        state = tuple(_arrays(g) for g in (d.trainable_variables, d.non_trainable_variables,
                                           d.optimizer.variables, d.metrics_variables))
        for x, y in batches:
            out, state = step(state, (x, y))
            logs.append(out)
        for group, values in zip((d.trainable_variables, d.non_trainable_variables,
                                  d.optimizer.variables, d.metrics_variables), state):
            _set(group, [np.asarray(v) for v in values])
    else:
        for x, y in batches:
            logs.append(d.train_step((x, y)))
    return np.array([[float(step_logs[k]) for k in LOG_KEYS] for step_logs in logs])


def _side(workdir: Path):
    """One backend's half of the comparison, reading and writing `.npz`/`.keras` in `workdir`."""
    backend = keras.backend.backend()
    other = OTHER[backend]
    keras.utils.set_random_seed(0)
    d = _distiller()
    inputs = workdir / "inputs.npz"
    if not inputs.exists():  # the first side draws the weights and batches
        rng = np.random.default_rng(0)
        _save_npz(inputs, weights=_arrays(d.weights),
                  x=rng.uniform(0, 255, size=(STEPS, 8, 8, 8, 3)).astype("float32"),  # pixels
                  y=rng.integers(0, 4, size=(STEPS, 8)).astype("int32"))
    data = _load_npz(inputs)
    _set(d.weights, data["weights"])
    before = _arrays(d.trainable_variables)
    d.epoch.assign(1.0)
    logs = _steps(d, list(zip(data["x"], data["y"])))
    probe = data["x"][0]
    state = _snapshot(d)
    moved = max(float(np.abs(a - b).max()) for a, b in zip(state["trainable"], before))
    _save_npz(workdir / f"{backend}.npz", logs=logs, moved=np.float32(moved),
              prediction=_arrays([d.student(probe)])[0], **state)
    d.student.save(workdir / f"{backend}_student.keras")
    d.save_weights(workdir / f"{backend}_distiller.weights.h5")
    if (workdir / f"{other}_student.keras").exists():
        _load_other(workdir)


def _load_other(workdir: Path):
    """Loads the other backend's student and checkpoint here; saves what they give."""
    import kdkeras  # noqa: F401  (registers kdkeras's layers)

    backend = keras.backend.backend()
    other = OTHER[backend]
    probe = _load_npz(workdir / "inputs.npz")["x"][0]
    student = keras.saving.load_model(workdir / f"{other}_student.keras")
    fresh = _distiller()
    fresh.load_weights(workdir / f"{other}_distiller.weights.h5")
    _save_npz(workdir / f"{other}_loaded_in_{backend}.npz",
              prediction=_arrays([student(probe)])[0], **_snapshot(fresh))


@pytest.fixture(scope="module")
def both_sides(tmp_path_factory):
    """Runs this backend's side, then the other's in a subprocess, then loads the other's files here."""
    workdir = tmp_path_factory.mktemp("backends")
    here = keras.backend.backend()
    if here not in OTHER:
        pytest.skip(f"compares TensorFlow and JAX; this process runs {here}")
    _side(workdir)
    proc = _python([__file__, str(workdir)], OTHER[here])
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    _load_other(workdir)
    return {name: _load_npz(workdir / f"{name}.npz") for name in (
        "tensorflow", "jax", "tensorflow_loaded_in_jax", "jax_loaded_in_tensorflow")}


# --- the tests ---------------------------------------------------------------------
def test_tf_and_jax_steps_give_the_same_losses_beta_and_norms(both_sides):
    tf_logs, jax_logs = both_sides["tensorflow"]["logs"], both_sides["jax"]["logs"]
    assert tf_logs.shape == (STEPS, len(LOG_KEYS))
    for i, key in enumerate(LOG_KEYS):
        np.testing.assert_allclose(jax_logs[:, i], tf_logs[:, i], rtol=1e-5, atol=1e-6,
                                   err_msg=key)
    beta, scale = tf_logs[:, LOG_KEYS.index("beta")], tf_logs[:, LOG_KEYS.index("kd_scale")]
    assert np.all((beta > 0) & (beta < 1)) and np.all(scale <= 1)


@pytest.mark.parametrize("group", ["trainable", "non_trainable", "optimizer"])
def test_tf_and_jax_steps_give_the_same_updated_state(both_sides, group):
    tf_side, jax_side = both_sides["tensorflow"][group], both_sides["jax"][group]
    assert len(tf_side) == len(jax_side) > 0
    for i, (a, b) in enumerate(zip(jax_side, tf_side)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5, err_msg=f"{group} {i}")
    if group == "trainable":  # the steps did move the student, by far more than the tolerance
        assert both_sides["tensorflow"]["moved"] > 1e-2


@pytest.mark.parametrize("saved_in, loaded_in", [("tensorflow", "jax"), ("jax", "tensorflow")])
def test_files_saved_under_one_backend_load_and_predict_the_same_under_the_other(
        both_sides, saved_in, loaded_in):
    original, loaded = both_sides[saved_in], both_sides[f"{saved_in}_loaded_in_{loaded_in}"]
    # The student's .keras file: the same logits on the same images.
    np.testing.assert_allclose(loaded["prediction"], original["prediction"], rtol=1e-5,
                               atol=1e-5)
    # The Distiller's checkpoint (weights + optimizer slots, what --resume reads): bit-exact.
    for group in ("trainable", "non_trainable", "optimizer"):
        for a, b in zip(loaded[group], original[group]):
            np.testing.assert_array_equal(a, b)


def test_backend_neutral_suites_pass_under_jax():
    if keras.backend.backend() == "jax":
        pytest.skip("this process already runs on JAX")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "not slow", *JAX_SUITE], cwd=REPO,
                          env=_env("jax"), capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout.splitlines()[-1]


STEP_WITHOUT_TENSORFLOW = """
import numpy as np, keras, kdkeras
from kdkeras.distill import Distiller, method_config
inp = keras.Input((3,))
s = keras.Model(inp, keras.layers.Dense(4)(inp))
t = keras.Model(inp, keras.layers.Dense(4)(inp))
d = Distiller(s, [t], method_config("hinton"))
d.compile(optimizer=keras.optimizers.SGD(0.1))
d.fit(np.ones((4, 3), "float32"), np.arange(4), batch_size=2, epochs=1, verbose=0)
print("ok", sorted(d.evaluate(np.ones((2, 3), "float32"), np.arange(2), return_dict=True,
                              verbose=0)))
"""


def test_kdkeras_trains_and_evaluates_under_jax_without_tensorflow():
    proc = _python(STEP_WITHOUT_TENSORFLOW, "jax", block_tensorflow=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ok ['accuracy', 'ce', 'loss']" in proc.stdout


def test_numpy_data_path_imports_without_tensorflow():
    proc = _python("import kdkeras.data.numpy_data, kdkeras.training.runs; print('ok')",
                   "jax", block_tensorflow=True)
    assert proc.returncode == 0, proc.stderr[-3000:]


if __name__ == "__main__":
    _side(Path(sys.argv[1]))
