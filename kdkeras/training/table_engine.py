"""A table at once on JAX: every row of a table stepped by one compiled program.

Most rows of a table distil the same student from the same teachers on the
same batches. Run one process per row and each recomputes those teachers,
makes its own batches on the host and compiles its own step. `TableEngine`
runs the rows together instead:

* the training set lives on the device as uint8 and each batch is cut,
  augmented and normalised inside the program (`kdkeras.data.device_batches`);
  rows of one seed share their batches, rows of another seed get theirs;
* each distinct teacher runs its forward pass once per batch (with the union
  of the taps its rows read) and its outputs feed every row that uses it;
* every row keeps its own `Distiller`: its student, adapters, optimizer state,
  config, β rule and logs; its step is the Distiller's own stateless JAX step
  (`kdkeras.distill.steps_jax.train_step`) given those teacher outputs, so the
  engine adds no loss, gradient or β code of its own;
* one compiled program steps every row: an epoch is one call of it (a
  `lax.scan` over the epoch's steps, on GPUs) or one call per step (on CPUs,
  whose XLA backend runs loop bodies many times slower); the epoch, the step
  and the learning rates enter as arguments, so a whole run compiles the
  training program once (and a test-set program once).

    rows = build_rows(runs, teachers, config, num_classes=10, input_shape=(32, 32, 3))
    engine = TableEngine(rows, x_train, y_train, batch_size=128,
                         learning_rate_at=config.learning_rate_at,
                         stats=(mean, std), test_images=x_test, test_labels=y_test)
    history = engine.fit(epochs=200)
    engine.write_back()          # the rows' Keras variables now hold the trained state

Rows of different K, methods and adapters mix freely; teachers are shared by
identity (pass the same Keras models to every row). Rows with different seeds
(e.g. K teachers, each trained as a student-alone row with its own seed and data
order) also run together. What trained together equals what trained apart
is tested in `tests/training/test_table_engine_jax.py`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import Optional

import jax
import jax.numpy as jnp
import keras
import numpy as np

from kdkeras.data.augment_spec import PAPER_AUGMENTATION, AugmentSpec
from kdkeras.data.device_batches import DeviceBatches, model_inputs, to_device
from kdkeras.distill import steps_jax
from kdkeras.distill.distiller import Distiller, as_list


@dataclasses.dataclass(frozen=True)
class EngineRow:
    """One row of a table: its name, its compiled `Distiller` and its seed (data order)."""

    name: str
    distiller: Distiller
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class _Forward:
    """One teacher forward per batch: a tapped view and the taps it returns after the logits."""

    view: keras.Model
    taps: tuple


def _check_row(row: EngineRow) -> None:
    d = row.distiller
    if not isinstance(d, Distiller):
        raise ValueError(f"Row {row.name!r}: expected a Distiller. Received: {type(d).__name__}.")
    if d.optimizer is None:
        raise ValueError(f"Row {row.name!r}: compile its Distiller (an optimizer) first.")
    if d.nonfinite_skip is not None or d.config.teacher_precision == "int8_ahead":
        raise ValueError(f"Row {row.name!r}: on_nonfinite='skip' and int8_ahead teachers are "
                         "TensorFlow-only and cannot run in the table engine.")
    if not isinstance(getattr(d.optimizer, "_learning_rate", None), keras.Variable):
        raise ValueError(f"Row {row.name!r}: the engine sets the learning rate per epoch and "
                         "needs an optimizer with a float learning rate, not a schedule.")


class TableEngine:
    """Trains the rows of a table together: one compiled program per epoch (see the module).

    Args:
      rows: `EngineRow`s with distinct names; their Distillers compiled.
      images, labels: the training set, uint8 (N, H, W, C) and integer (N,).
      batch_size: examples per step (the last partial batch of an epoch is dropped).
      learning_rate_at: epoch (0-based) -> learning rate, for every row.
      augment: the augmentation (`AugmentSpec`), or None.
      stats: `(mean, std)` per channel in [0, 1] units to normalise inputs
        with, or None for models that normalise their own inputs.
      test_images, test_labels: a test set, evaluated after every epoch.
      loop: how steps are driven: `"scan"` (an epoch is one program, a
        `lax.scan` over its steps), `"steps"` (a one-step program called per
        step) or `"auto"`: "steps" on CPU, where XLA runs loop bodies ~15×
        slower than the same ops outside a loop (measured: a ResNet-8 step),
        "scan" elsewhere. Either way one training program is compiled.
    """

    def __init__(self, rows: Sequence[EngineRow], images, labels, *, batch_size: int,
                 learning_rate_at: Callable[[int], float],
                 augment: Optional[AugmentSpec] = PAPER_AUGMENTATION,
                 stats: Optional[tuple] = None, test_images=None, test_labels=None,
                 loop: str = "auto"):
        self.rows = list(rows)
        if loop not in ("auto", "scan", "steps"):
            raise ValueError(f"loop must be 'auto', 'scan' or 'steps'. Received: loop={loop!r}.")
        self.loop = loop if loop != "auto" else (
            "steps" if jax.default_backend() == "cpu" else "scan")
        if not self.rows:
            raise ValueError("A table engine needs at least one row. Received: rows=[].")
        names = [r.name for r in self.rows]
        if len(set(names)) != len(names):
            raise ValueError(f"Row names must be distinct. Received: {names}.")
        for row in self.rows:
            _check_row(row)
            if not row.distiller.optimizer.built:
                row.distiller.optimizer.build(row.distiller.trainable_variables)
        self.images, self.labels = to_device(images, labels)
        self.batches = DeviceBatches(len(self.labels), int(batch_size), augment, stats)
        self.learning_rate_at = learning_rate_at
        self.test = None if test_images is None else to_device(test_images, test_labels)
        self._share_teacher_variables()
        self._plan_teacher_forwards()
        self._groups = {}
        for i, row in enumerate(self.rows):
            self._groups.setdefault(int(row.seed), []).append(i)
        self._programs = {}
        self.compile_seconds = {}
        self.state = self.initial_state()

    # --- what is shared -------------------------------------------------------
    def _share_teacher_variables(self):
        """Teacher weights are held once; each row's other frozen values are its own."""
        self._shared, index = [], {}
        for row in self.rows:
            for t in row.distiller.teachers:
                for v in t.variables:
                    if id(v) not in index:
                        index[id(v)] = len(self._shared)
                        self._shared.append(v)
        self._layout = []
        for row in self.rows:
            d = row.distiller
            frozen = d.non_trainable_variables
            shared = [(i, index[id(v)]) for i, v in enumerate(frozen) if id(v) in index]
            own = [i for i, v in enumerate(frozen) if id(v) not in index]
            self._layout.append(dict(
                shared=shared, own=own,
                epoch=own.index(next(i for i, v in enumerate(frozen) if v is d.epoch)),
                lr=next(i for i, v in enumerate(d.optimizer.variables)
                        if v is d.optimizer._learning_rate)))

    def _plan_teacher_forwards(self):
        """One forward per (teacher, folding) with the union of taps; each row picks its taps."""
        needs = []
        for r, row in enumerate(self.rows):
            d = row.distiller
            if d.has_kd:
                for k, t in enumerate(d.teachers):
                    key = (id(t), d.fold_teacher_batchnorm)
                    needs.append((r, k, key, d.teacher_tap_names[k], d.teacher_views[k]))
        self.forwards, keys = [], []
        self._picks = [[None] * len(row.distiller.teachers) for row in self.rows]
        for r, k, key, taps, view in sorted(needs, key=lambda n: -len(n[3])):
            f = next((j for j, (fk, fw) in enumerate(zip(keys, self.forwards))
                      if fk == key and set(taps) <= set(fw.taps)), None)
            if f is None:
                f = len(self.forwards)
                self.forwards.append(_Forward(view, taps))
                keys.append(key)
            self._picks[r][k] = (f, [0] + [1 + self.forwards[f].taps.index(n) for n in taps])

    def teacher_forwards_per_batch(self) -> int:
        """Teacher forward passes per step of the engine (per distinct seed and teacher)."""
        return sum(len({p[0] for r in rows for p in self._picks[r] if p is not None})
                   for rows in self._groups.values())

    # --- state ----------------------------------------------------------------
    def initial_state(self) -> dict:
        """Copies of the rows' current Keras values: `{"teachers": [...], "rows": [(trainable,
        own frozen, optimizer, metrics), ...]}`.

        Copies, because on a GPU the programs donate their input state: the
        Keras variables (the teachers' among them) keep arrays of their own.
        """
        rows = []
        for row, layout in zip(self.rows, self._layout):
            d = row.distiller
            frozen = d.non_trainable_variables
            rows.append(([v.value for v in d.trainable_variables],
                         [frozen[i].value for i in layout["own"]],
                         [v.value for v in d.optimizer.variables],
                         [v.value for v in d.metrics_variables]))
        state = {"teachers": [v.value for v in self._shared], "rows": rows}
        return jax.tree_util.tree_map(jnp.copy, state)

    def write_back(self) -> None:
        """Assigns the engine's state to the rows' Keras variables (to save or evaluate them)."""
        for row, layout, (trainable, own, opt, metrics) in zip(self.rows, self._layout,
                                                              self.state["rows"]):
            d = row.distiller
            frozen = d.non_trainable_variables
            pairs = (list(zip(d.trainable_variables, trainable))
                     + [(frozen[i], v) for i, v in zip(layout["own"], own)]
                     + list(zip(d.optimizer.variables, opt))
                     + list(zip(d.metrics_variables, metrics)))
            for variable, value in pairs:
                variable.assign(jnp.copy(value))   # the next program may donate `value`

    def _frozen(self, r, own, teachers):
        layout = self._layout[r]
        frozen = [None] * (len(own) + len(layout["shared"]))
        for i, value in zip(layout["own"], own):
            frozen[i] = value
        for i, j in layout["shared"]:
            frozen[i] = teachers[j]
        return frozen

    # --- the compiled programs --------------------------------------------------
    def _start_epoch(self, r, row_state, epoch, lr, reset):
        trainable, own, opt, metrics = row_state
        layout = self._layout[r]
        own, opt = list(own), list(opt)
        own[layout["epoch"]] = epoch.astype(own[layout["epoch"]].dtype)
        opt[layout["lr"]] = lr.astype(opt[layout["lr"]].dtype)
        # Keras resets the metrics at every epoch's start.
        metrics = [jnp.where(reset, jnp.zeros_like(m), m) for m in metrics]
        return (list(trainable), own, opt, list(metrics))

    def _row_step(self, r, row_state, teachers, x, y, teacher_outputs):
        trainable, own, opt, metrics = row_state
        d = self.rows[r].distiller
        state = (trainable, self._frozen(r, own, teachers), opt, metrics)
        logs, (trainable, frozen, opt, metrics) = steps_jax.train_step(
            d, state, (x, y), teacher_outputs=teacher_outputs)
        own = [frozen[i] for i in self._layout[r]["own"]]
        return logs, (list(trainable), own, list(opt), list(metrics))

    def _run_steps(self, state, images, labels, epoch, lrs, first_step, reset, *, num_steps):
        teachers = state["teachers"]
        rows = [self._start_epoch(r, s, epoch, lrs[r], reset) for r, s in enumerate(state["rows"])]
        orders = {seed: self.batches.epoch_order(seed, epoch) for seed in self._groups}
        mapping = list(zip(self._shared, teachers))

        def one_step(rows, step):
            rows, logs = list(rows), [None] * len(rows)
            for seed, members in self._groups.items():
                x, y = self.batches.batch(images, labels, orders[seed], seed, epoch, step)
                wanted = sorted({p[0] for r in members for p in self._picks[r] if p is not None})
                with keras.StatelessScope(state_mapping=mapping):
                    outputs = {f: as_list(self.forwards[f].view(x, training=False))
                               for f in wanted}
                for r in members:
                    picked = [[outputs[f][i] for i in taps] for f, taps in self._picks[r]]
                    logs[r], rows[r] = self._row_step(r, rows[r], teachers, x, y, picked)
            return rows, logs

        if num_steps == 1:   # no loop: XLA's CPU backend runs loop bodies many times slower
            rows, logs = one_step(rows, first_step)
            logs = jax.tree_util.tree_map(lambda v: v[None], logs)
        else:
            rows, logs = jax.lax.scan(one_step, rows, first_step + jnp.arange(num_steps))
        return {"teachers": teachers, "rows": rows}, logs

    def _program(self, num_steps: int):
        """The compiled program of `num_steps` steps (compiled on first use; timed)."""
        key = ("train", int(num_steps))
        if key not in self._programs:
            donate = (0,) if jax.default_backend() != "cpu" else ()
            fn = jax.jit(lambda *a: self._run_steps(*a, num_steps=key[1]), donate_argnums=donate)
            start = time.perf_counter()
            self._programs[key] = fn.lower(self.state, self.images, self.labels, jnp.int32(0),
                                           jnp.zeros(len(self.rows), jnp.float32),
                                           jnp.int32(0), jnp.bool_(True)).compile()
            self.compile_seconds[key] = time.perf_counter() - start
        return self._programs[key]

    def run_steps(self, epoch: int, num_steps: int, first_step: int = 0, *,
                  reset_metrics: Optional[bool] = None) -> list[dict]:
        """Runs steps `first_step..first_step+num_steps-1` of `epoch`; returns each row's logs
        as arrays over those steps. Metrics restart when `first_step` is 0 (unless told)."""
        if first_step < 0 or num_steps < 1 or first_step + num_steps > self.batches.steps_per_epoch:
            raise ValueError(f"Steps {first_step}..{first_step + num_steps - 1} are outside the "
                             f"epoch's {self.batches.steps_per_epoch} steps.")
        reset = first_step == 0 if reset_metrics is None else reset_metrics
        lrs = jnp.asarray([self.learning_rate_at(epoch)] * len(self.rows), jnp.float32)
        args = (self.images, self.labels, jnp.int32(epoch), lrs)
        if self.loop == "scan":
            self.state, logs = self._program(num_steps)(self.state, *args, jnp.int32(first_step),
                                                        jnp.bool_(reset))
            return logs
        program, per_step = self._program(1), []
        for i in range(num_steps):   # dispatched asynchronously: the host runs ahead
            self.state, logs = program(self.state, *args, jnp.int32(first_step + i),
                                       jnp.bool_(reset and i == 0))
            per_step.append(logs)
        return jax.tree_util.tree_map(lambda *v: jnp.concatenate(v), *per_step)

    def batch(self, seed: int, epoch: int, step: int):
        """The (inputs, labels) the program makes for rows of `seed` at (epoch, step)."""
        order = self.batches.epoch_order(seed, epoch)
        return self.batches.batch(self.images, self.labels, order, seed, epoch, step)

    # --- evaluation -------------------------------------------------------------
    def _evaluate(self, state, images, labels, valid):
        def one_batch(totals, batch):
            x, y, keep = batch
            x = model_inputs(x.astype(jnp.float32), self.batches.stats)
            out = []
            for r, (trainable, own, _, _) in enumerate(state["rows"]):
                d = self.rows[r].distiller
                frozen = d.non_trainable_variables
                pairs = list(zip(d.trainable_variables, trainable)) + [
                    (frozen[i], v) for i, v in zip(self._layout[r]["own"], own)]
                with keras.StatelessScope(state_mapping=pairs):
                    logits = d.student(x, training=False).astype(jnp.float32)
                ce = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
                correct = (jnp.argmax(logits, axis=-1) == y).astype(jnp.float32)
                out.append(jnp.stack([jnp.sum(correct * keep), jnp.sum(ce * keep)]))
            return totals + jnp.stack(out), None

        totals, _ = jax.lax.scan(one_batch, jnp.zeros((len(self.rows), 2)),
                                 (images, labels, valid))
        return totals / jnp.sum(valid)

    def evaluate(self, batch_size: int = 500) -> list[dict]:
        """Each row's student on the test set: `{"accuracy", "loss"}` (inference mode)."""
        if self.test is None:
            raise ValueError("No test set: pass test_images and test_labels.")
        images, labels = self.test
        n = len(labels)
        batches = math.ceil(n / batch_size)
        pad = batches * batch_size - n
        images = jnp.pad(images, [(0, pad)] + [(0, 0)] * 3).reshape(
            (batches, batch_size) + images.shape[1:])
        labels = jnp.pad(labels, (0, pad)).reshape(batches, batch_size)
        valid = (jnp.arange(batches * batch_size) < n).astype(jnp.float32).reshape(
            batches, batch_size)
        key = ("evaluate", batch_size)
        if key not in self._programs:
            start = time.perf_counter()
            self._programs[key] = jax.jit(self._evaluate).lower(
                self.state, images, labels, valid).compile()
            self.compile_seconds[key] = time.perf_counter() - start
        totals = np.asarray(self._programs[key](self.state, images, labels, valid))
        return [{"accuracy": float(a), "loss": float(c)} for a, c in totals]

    # --- the loop -----------------------------------------------------------------
    def fit(self, epochs: int, *, initial_epoch: int = 0,
            on_epoch_end: Optional[Callable[[int, dict], None]] = None,
            verbose: bool = True) -> dict:
        """Trains every row for epochs `initial_epoch..epochs-1`; returns each row's history.

        A row's history entry per epoch: its training logs at the epoch's end
        (the running means Keras would show), `learning_rate`, `seconds` (the
        epoch's wall time, shared by all rows, compilation not included) and, with a test set,
        `val_accuracy`/`val_loss`. A row whose loss turns NaN or Inf is
        flagged (`"nonfinite": True`) and the others go on.
        """
        history = {row.name: [] for row in self.rows}
        steps = self.batches.steps_per_epoch
        self._program(steps if self.loop == "scan" else 1)   # compiled here: not in `seconds`
        for epoch in range(initial_epoch, epochs):
            start = time.perf_counter()
            logs = self.run_steps(epoch, steps)
            logs = jax.device_get(logs)
            seconds = time.perf_counter() - start
            tested = self.evaluate() if self.test is not None else [None] * len(self.rows)
            for row, row_logs, test in zip(self.rows, logs, tested):
                entry = {"epoch": epoch, "learning_rate": float(self.learning_rate_at(epoch)),
                         "seconds": seconds, **{k: float(v[-1]) for k, v in row_logs.items()}}
                entry["nonfinite"] = not bool(np.all(np.isfinite(row_logs["loss"])))
                if test is not None:
                    entry.update(val_accuracy=test["accuracy"], val_loss=test["loss"])
                history[row.name].append(entry)
            if on_epoch_end is not None:
                on_epoch_end(epoch, history)
            if verbose:
                summary = "  ".join(f"{name}: {h[-1].get('val_accuracy', h[-1]['accuracy']):.4f}"
                                    for name, h in history.items())
                print(f"Epoch {epoch + 1}/{epochs} {seconds:.1f}s  {summary}", flush=True)
        return history
