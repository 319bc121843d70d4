"""The Distiller's train step really runs under XLA when compiled with jit_compile=True.

Keras can turn XLA off silently (e.g. under op determinism, or layers that do
not support it); this test proves the step was compiled by XLA by asking XLA to
dump what it compiles and finding the step's module there.
"""

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import numpy as np, keras
    from kdkeras import models
    from kdkeras.distill import Distiller, method_config
    s = models.get("resnet8", num_classes=4, input_shape=(8, 8, 3))
    t = [models.get("resnet8", num_classes=4, input_shape=(8, 8, 3)) for _ in range(2)]
    d = Distiller(s, t, method_config("ours"))
    d.compile(optimizer=keras.optimizers.SGD(0.01), jit_compile=True)
    assert d.jit_compile is True, d.jit_compile
    x = np.random.default_rng(0).normal(size=(8, 8, 8, 3)).astype("float32")
    y = np.arange(8, dtype="int32") % 4
    h = d.fit(x, y, batch_size=4, epochs=1, verbose=0)
    print("LOGS", sorted(h.history))
""")


def test_train_step_is_compiled_by_xla(tmp_path):
    dump = tmp_path / "xla_dump"
    env = dict(os.environ, XLA_FLAGS=f"--xla_dump_to={dump}", TF_CPP_MIN_LOG_LEVEL="3",
               KERAS_BACKEND="tensorflow")
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "beta" in proc.stdout and "kd_grad_norm" in proc.stdout
    modules = [p.name for p in dump.iterdir()] if dump.exists() else []
    # XLA names each compiled cluster's module after the tf.function it came from.
    step_modules = [m for m in modules if "one_step_on_data" in m]
    assert step_modules, f"no XLA module for the train step; dumped: {modules[:10]}"
