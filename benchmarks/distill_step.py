"""The Distiller's train step against its floor and against Keras's own distillers.

A benchmark, not a test: it prints a table, then one line of JSON.

    .venv/bin/python benchmarks/distill_step.py            # batch 128, K=3: a few minutes
    .venv/bin/python benchmarks/distill_step.py --quick    # ~40 CPU seconds, smaller numbers

Measured side by side in one process, on the same models (ResNet-32 teachers,
ResNet-8 student, CIFAR shapes, random weights: a step's cost does not depend
on them) and the same batch, round-robin (one call of each variant per round,
the median over rounds), so that a load change on a shared machine hits every
variant alike and the *ratios* hold even when the milliseconds drift:

(a) our Distiller step, K teachers, the full method (Gram + KL + β), with
    its default of BatchNorm-folded teacher views (`kdkeras.models.folding`),
    and the same step with the teachers unfolded;
(b) the fp32 floor: each teacher's forward pass in inference mode, and one
    plain training step of the student (CE only, Keras's own `train_step`),
    each measured alone; floor = Σ teachers + student step. The teachers are
    the Keras models as given; the "folded floor" times their folded views
    instead, the floor of a step that runs folded teachers;
(c) single-teacher Hinton KD (T=4, α=0.9): `keras.distillation.Distiller`,
    the keras.io Distiller-example pattern (a `keras.Model` with a custom
    `train_step`: teacher forward, student forward, α·CE + (1−α)·KL·T², one
    gradient), and our Distiller with method "hinton" and one teacher;
(d) our K-teacher step with XLA (`jit_compile=True`) against without;
(e) the training input pipeline (augmentation + normalisation, the one
    `make_input_pipeline` builds) alone, against the step's consumption;
and the options below the fp32 floor, for (a) and (c): the teachers as frozen
bfloat16 copies (`DistillConfig(teacher_precision="bfloat16")`), and the
teachers as int8 TFLite models run ahead of the step
(`kdkeras.distill.teacher_outputs`, what `teacher_precision="int8_ahead"` runs:
in training they run in the input pipeline; here their time and the time of the
step given their outputs are measured apart and added, since on a CPU both
share the same cores). With `--breakdown` (default off with --quick) the K-teacher
step is also timed with β off (one backward pass) and without the Gram term,
which splits its time over the floor. --quick times teacher 0 alone and counts
it K times in the floor (the K teachers are one architecture).

JSON keys: floor_ratio = a / b; floor_ratio_folded_floor = a / the folded floor;
unfolded_floor_ratio = a with unfolded teachers / b; speedup_vs_keras_io and
speedup_vs_keras_distiller = anchor time / our Hinton step; best_speedup_vs_keras_io
with best_option, over our Hinton variants (a fastest option changes the
teacher's numerics: its accuracy effect is measured by training, not here); xla_speedup = time without XLA /
time with (--quick: on the student step alone); pipeline_fraction = pipeline time per batch / step time (below 1:
the pipeline keeps up); peak_rss_mb: the peak resident memory of a fresh
process that builds the K-teacher Distiller and runs 3 steps (`--memory`;
peak_rss_mb_by_k for K = 1..--teachers); beta_split_share and feature_share (`--breakdown`) = the
step's time minus its twin's without the β split / the Gram term, over the
floor. Also: the CPU seconds of each variant's first call (tracing),
`first_call_cpu_seconds`, and of the whole process, `process_cpu_seconds`.
Every ratio comes in wall time (the top-level keys) and CPU time
(`cpu_time_ratios`: steadier when other jobs load the machine).
"""

from __future__ import annotations

import datetime
import json
import os
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402
from absl import logging as absl_logging  # noqa: E402

flags.DEFINE_boolean("quick", False, "Small and short: batch 32, 5 rounds, teacher 0 timed "
                     "for all K, XLA on the student step only, int8 teachers for K=1 only, "
                     "no bf16, breakdown or memory probe.")
flags.DEFINE_integer("batch_size", None, "Global batch (default 128; --quick: 32).")
flags.DEFINE_integer("teachers", 3, "K, the teachers of (a).")
flags.DEFINE_integer("num_classes", 100, "Classes (CIFAR-100 by default).")
flags.DEFINE_integer("rounds", None, "Timed rounds (default 10; --quick: 5).")
flags.DEFINE_integer("warmup", None, "Untimed calls of each variant first, tracing included "
                     "(default 2; --quick: 1).")
flags.DEFINE_integer("threads", None, "TensorFlow intra- and inter-op threads (default: "
                     "TensorFlow's). 1 makes CPU time a clean measure of work on a loaded machine "
                     "(no thread-pool spinning is counted).")
flags.DEFINE_boolean("xla", True, "Measure the XLA variant (d).")
flags.DEFINE_boolean("bf16", None, "Measure the bfloat16-teacher options (default: on, off "
                     "with --quick).")
flags.DEFINE_boolean("breakdown", None, "Also time the K-teacher step with beta off and without "
                     "the Gram term, to split its time over the floor (default: on, off with "
                     "--quick).")
flags.DEFINE_boolean("int8", True, "Measure the int8 TFLite teachers run ahead of the step.")
flags.DEFINE_boolean("memory", None, "Peak memory of a fresh K-teacher process (default: on, "
                     "off with --quick).")
flags.DEFINE_list("memory_teachers", None, "K values of the memory probe (default: 1..--teachers).")
flags.DEFINE_integer("memory_probe", None, "Internal: run the memory probe for this K and exit.")
FLAGS = flags.FLAGS

T_HINTON, ALPHA_HINTON = 4.0, 0.9   # α on the KD term, as kdkeras's "hinton" method
FIRST_CALL_CPU_S: dict = {}


# --- the anchors -----------------------------------------------------------------
def keras_io_distiller(student, teacher, alpha=1 - ALPHA_HINTON, temperature=T_HINTON):
    """The keras.io knowledge-distillation example's `Distiller` (Keras 3 form)."""
    import keras
    from keras import ops

    class KerasIODistiller(keras.Model):
        def __init__(self, student, teacher):
            super().__init__()
            self.teacher, self.student = teacher, student
            self.ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
            self.kl = keras.losses.KLDivergence()
            self.loss_tracker = keras.metrics.Mean(name="loss")

        @property
        def metrics(self):
            return [self.loss_tracker]

        def call(self, x, training=False):
            return self.student(x, training=training)

        def train_step(self, data):
            import tensorflow as tf

            x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
            teacher_predictions = self.teacher(x, training=False)
            with tf.GradientTape() as tape:
                student_predictions = self.student(x, training=True)
                student_loss = self.ce(y, student_predictions)
                distillation_loss = self.kl(
                    ops.softmax(teacher_predictions / temperature, axis=1),
                    ops.softmax(student_predictions / temperature, axis=1)) * temperature ** 2
                loss = alpha * student_loss + (1 - alpha) * distillation_loss
            variables = self.student.trainable_variables
            self.optimizer.apply(tape.gradient(loss, variables), variables)
            self.loss_tracker.update_state(loss)
            return {"loss": self.loss_tracker.result()}

    teacher.trainable = False
    return KerasIODistiller(student, teacher)


def keras_builtin_distiller(student, teacher):
    import keras

    return keras.distillation.Distiller(
        teacher=teacher, student=student,
        distillation_losses=keras.distillation.LogitsDistillation(temperature=T_HINTON),
        student_loss_weight=1 - ALPHA_HINTON)


# --- building ----------------------------------------------------------------------
def sgd():
    import keras

    return keras.optimizers.SGD(1e-2, momentum=0.9, nesterov=True)


def build_variants(batch, k, num_classes, xla, bf16, int8, quick, breakdown):
    import keras
    import numpy as np
    import tensorflow as tf

    from kdkeras import models
    from kdkeras.distill import Distiller, method_config

    keras.utils.set_random_seed(0)
    shape = dict(num_classes=num_classes, input_shape=(32, 32, 3))
    teachers = [models.get("resnet32", **shape) for _ in range(k)]
    for t in teachers:
        t.trainable = False
    rng = np.random.default_rng(0)
    x = tf.constant(rng.uniform(0, 255, size=(batch, 32, 32, 3)).astype("float32"))  # pixels
    y = tf.constant((np.arange(batch) % num_classes).astype("int32"))

    def student():
        return models.get("resnet8", **shape)

    def distiller(ts, method, jit=False, fold=True, **options):
        d = Distiller(student(), ts, method_config(method, **options),
                      fold_teacher_batchnorm=fold)
        d.compile(optimizer=sgd(), jit_compile=jit)
        return lambda: d.train_on_batch(x, y)

    variants = {}
    variants[f"ours_k{k}"] = distiller(teachers, "ours")
    variants[f"ours_k{k}_unfolded"] = distiller(teachers, "ours", fold=False)
    if breakdown:   # where the step's time over the floor goes
        variants[f"ours_k{k}_beta_off"] = distiller(teachers, "ours", beta_mode="off")
        variants[f"ours_k{k}_no_feature"] = distiller(teachers, "ours", feature_loss=None)
    # --quick times teacher 0 alone and counts it K times (one architecture).
    for i, t in enumerate(teachers[:1] if quick else teachers):
        forward = tf.function(lambda x, t=t: t(x, training=False))
        variants[f"teacher{i}_forward"] = lambda f=forward: f(x).numpy()
        folded = tf.function(lambda x, t=models.fold_batch_norms(t): t(x, training=False))
        variants[f"teacher{i}_forward_folded"] = lambda f=folded: f(x).numpy()
    plain = student()
    plain.compile(optimizer=sgd(), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=False)
    variants["student_step"] = lambda: plain.train_on_batch(x, y)
    variants["ours_hinton_k1"] = distiller(teachers[:1], "hinton")
    variants["ours_hinton_k1_unfolded"] = distiller(teachers[:1], "hinton", fold=False)
    builtin = keras_builtin_distiller(student(), teachers[0])
    builtin.compile(optimizer=sgd(), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    jit_compile=False)
    variants["keras_distiller_k1"] = lambda: builtin.train_on_batch(x, y)
    keras_io = keras_io_distiller(student(), teachers[0])
    keras_io.compile(optimizer=sgd(), jit_compile=False)
    variants["keras_io_k1"] = lambda: keras_io.train_on_batch(x, y)
    if xla:
        if quick:   # XLA compiles the small student step only
            plain_xla = student()
            plain_xla.compile(optimizer=sgd(), jit_compile=True,
                              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            variants["student_step_xla"] = lambda: plain_xla.train_on_batch(x, y)
        else:
            variants[f"ours_k{k}_xla"] = distiller(teachers, "ours", jit=True)
    if int8:
        # Teachers run ahead (in the input pipeline) as int8 TFLite models; the
        # step gets their outputs with the batch. Cost = teacher runs + step.
        from kdkeras.distill.teacher_outputs import TFLiteTeacher

        calibration = rng.uniform(0, 255, size=(32, 32, 32, 3)).astype("float32")
        threads = FLAGS.threads or os.cpu_count()
        ks = [1] if quick else [1, k]
        fast = {}
        for kk in ks:
            taps = kk > 1   # the full method reads taps; Hinton KD the logits only
            fast[kk] = [TFLiteTeacher(t, taps=taps, quantization="int8",
                                      representative=calibration, num_threads=threads)
                        for t in teachers[:kk]]
            outputs = tuple(tuple(tf.constant(o) for o in f(x.numpy())) for f in fast[kk])
            batch_x = {"image": x, "teacher_outputs": outputs}
            name = "ours_hinton_k1" if kk == 1 else f"ours_k{kk}"
            d = Distiller(student(), teachers[:kk], method_config("hinton" if kk == 1 else "ours"))
            d.compile(optimizer=sgd(), jit_compile=False)
            variants[f"{name}_step_given_int8_outputs"] = (
                lambda d=d, b=batch_x: d.train_on_batch(b, y))
            variants[f"int8_teachers_k{kk}_ahead"] = (
                lambda fs=fast[kk]: [f(x.numpy()) for f in fs])
    if bf16:   # the run option: DistillConfig(teacher_precision="bfloat16")
        variants[f"ours_k{k}_bf16_teachers"] = distiller(teachers, "ours",
                                                         teacher_precision="bfloat16")
        hinton_bf16 = Distiller(student(), teachers[:1],
                                method_config("hinton", teacher_precision="bfloat16"))
        hinton_bf16.compile(optimizer=sgd(), jit_compile=False)
        variants["ours_hinton_k1_bf16_teacher"] = lambda: hinton_bf16.train_on_batch(x, y)
        forward = tf.function(lambda x, t=hinton_bf16.teachers[0]: t(x, training=False))
        variants["teacher0_forward_bf16"] = lambda f=forward: f(x).numpy()
    return variants


def time_round_robin(variants: dict, rounds: int, warmup: int) -> tuple[dict, dict]:
    """Median wall and CPU ms per variant, the variants interleaved call by call.

    CPU time (`time.process_time`: this process's threads, user + system) does
    not count the time a loaded machine keeps the process waiting, so its
    ratios are the steadier ones on a shared machine; wall time is what a user
    waits on an idle one. The CPU seconds of each variant's first call (its
    tracing and graph optimisation) go to `FIRST_CALL_CPU_S`.
    """
    for i in range(warmup):
        for name, fn in variants.items():
            start_cpu = time.process_time()
            fn()
            if i == 0:
                FIRST_CALL_CPU_S[name] = round(time.process_time() - start_cpu, 2)
    wall = {name: [] for name in variants}
    cpu = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            cpu[name].append(1000.0 * (time.process_time() - start_cpu))
            wall[name].append(1000.0 * (time.perf_counter() - start))
    return ({n: statistics.median(t) for n, t in wall.items()},
            {n: statistics.median(t) for n, t in cpu.items()})


def pipeline_ms_per_batch(batch: int, batches: int) -> float:
    """The training input pipeline alone: ms per batch of shuffle + augment."""
    from kdkeras.data import load_dataset, make_input_pipeline

    splits = load_dataset("synthetic", num_train=batch * (batches + 2), num_test=8)
    ds = make_input_pipeline(splits.train, training=True, batch_size=batch, seed=0,
                             augment=True)
    it = iter(ds)
    next(it)   # start-up (threads, first shuffle fill) is not the steady state
    start = time.perf_counter()
    n = 0
    for _ in range(batches):
        next(it)
        n += 1
    return 1000.0 * (time.perf_counter() - start) / n


# --- memory ------------------------------------------------------------------------
def memory_probe(k: int, batch: int, num_classes: int) -> dict:
    """Peak RSS of this (fresh) process: K ResNet-32 teachers, the full method, 3 steps."""
    import keras
    import numpy as np

    from kdkeras import models
    from kdkeras.distill import Distiller, method_config

    base = _vm_kb("VmRSS") / 1024
    shape = dict(num_classes=num_classes, input_shape=(32, 32, 3))
    teachers = [models.get("resnet32", **shape) for _ in range(k)]
    d = Distiller(models.get("resnet8", **shape), teachers, method_config("ours"))
    d.compile(optimizer=sgd(), jit_compile=False)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, size=(batch, 32, 32, 3)).astype("float32")
    y = (np.arange(batch) % num_classes).astype("int32")
    for _ in range(3):
        d.train_on_batch(x, y)
    # getrusage's ru_maxrss survives execve (Linux keeps the parent's peak if it
    # was higher), so the peak of this process's own address space is VmHWM;
    # the probes run before the benchmark builds anything, so both agree.
    return {"teachers": k, "batch_size": batch,
            "peak_rss_mb": round(_vm_kb("VmHWM") / 1024, 1),
            "ru_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "after_imports_mb": round(base, 1), "keras": keras.__version__}


def _vm_kb(field: str) -> float:
    """A `VmHWM`/`VmRSS` line of /proc/self/status in kB (ru_maxrss where there is none)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except OSError:
        pass
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def run_memory_probe(k: int, batch: int, num_classes: int) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), f"--memory_probe={k}",
           f"--batch_size={batch}", f"--num_classes={num_classes}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        return {"teachers": k, "error": proc.stderr[-500:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- report ------------------------------------------------------------------------
def main(argv):
    del argv
    quick = FLAGS.quick
    batch = FLAGS.batch_size or (32 if quick else 128)
    if FLAGS.memory_probe:
        print(json.dumps(memory_probe(FLAGS.memory_probe, batch, FLAGS.num_classes)))
        return
    rounds = FLAGS.rounds or (5 if quick else 10)
    k = FLAGS.teachers
    memory = FLAGS.memory if FLAGS.memory is not None else not quick
    started = time.perf_counter()
    load_before = os.getloadavg()[0]

    # Memory first, in fresh processes, while this one is still small.
    memory_rows = []
    if memory:
        ks = [int(v) for v in (FLAGS.memory_teachers or range(1, k + 1))]
        memory_rows = [run_memory_probe(kk, batch, FLAGS.num_classes) for kk in ks]

    import keras
    import tensorflow as tf

    from kdkeras.training.provenance import device_name, git_commit

    if FLAGS.threads:
        tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
        tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)
    absl_logging.set_verbosity(absl_logging.WARNING)   # SavedModel export chatter
    tf.get_logger().setLevel("ERROR")   # "N calls triggered retracing": one trace per model here
    phases = {"start_and_memory": time.perf_counter() - started}
    on = {name: getattr(FLAGS, name) if getattr(FLAGS, name) is not None else not quick
          for name in ("bf16", "breakdown")}
    variants = build_variants(batch, k, FLAGS.num_classes, FLAGS.xla, on["bf16"], FLAGS.int8,
                              quick=quick, breakdown=on["breakdown"])
    phases["build"] = time.perf_counter() - started - sum(phases.values())
    wall, cpu = time_round_robin(variants, rounds, FLAGS.warmup or (1 if quick else 2))
    phases["timing"] = time.perf_counter() - started - sum(phases.values())
    for ms in (wall, cpu):   # the int8 options: teachers ahead + the step given their outputs
        for kk, name in ((1, "ours_hinton_k1"), (k, f"ours_k{k}")):
            if f"{name}_step_given_int8_outputs" in ms:
                ms[f"{name}_int8_teachers"] = (ms[f"int8_teachers_k{kk}_ahead"]
                                               + ms[f"{name}_step_given_int8_outputs"])
    pipeline = pipeline_ms_per_batch(batch, batches=5 if quick else 20)
    phases["pipeline"] = time.perf_counter() - started - sum(phases.values())
    ratios = {"wall": derived(wall, k, pipeline), "cpu": derived(cpu, k, None)}
    device = device_name()
    print(f"batch {batch}, K={k} ResNet-32 teachers, ResNet-8 student, {FLAGS.num_classes} "
          f"classes; median of {rounds} round-robin rounds; {device}; TF {tf.__version__}, "
          f"Keras {keras.__version__}; load average {load_before:.1f} at start, "
          f"{os.getloadavg()[0]:.1f} at end")
    print(f"{'variant':<40}{'wall ms':>9}{'ratio':>7}{'cpu ms':>9}{'ratio':>7}   ratio to")
    for name, key, base_key, base_label in table_rows(wall, k):
        print(f"{name:<40}{wall[key]:>9.1f}{wall[key] / base(wall, base_key, k):>7.3f}"
              f"{cpu[key]:>9.1f}{cpu[key] / base(cpu, base_key, k):>7.3f}   {base_label}")
    print(f"{'(e) input pipeline, per batch':<40}{pipeline:>9.1f}{pipeline / wall[f'ours_k{k}']:>7.3f}"
          f"{'':>16}   step (a)")

    for row in memory_rows:
        print(f"peak RSS, fresh process, K={row['teachers']}, batch {batch}: "
              f"{row.get('peak_rss_mb', 'error')} MB (after imports "
              f"{row.get('after_imports_mb', '?')} MB)")
    result = {
        **ratios["wall"],
        "cpu_time_ratios": ratios["cpu"],
        "ms": {n: round(v, 2) for n, v in wall.items()},
        "cpu_ms": {n: round(v, 2) for n, v in cpu.items()},
        "pipeline_ms_per_batch": round(pipeline, 2),
        # The K of step (a); the other probes' peaks show how memory grows with K.
        "peak_rss_mb": next((r.get("peak_rss_mb") for r in memory_rows if r["teachers"] == k),
                            None),
        "peak_rss_mb_by_k": {r["teachers"]: r.get("peak_rss_mb") for r in memory_rows},
        "memory": memory_rows,
        "process_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "batch_size": batch, "teachers": k, "rounds": rounds, "quick": quick,
        "threads": FLAGS.threads,
        "device": device, "cpu_count": os.cpu_count(),
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "tensorflow": tf.__version__, "keras": keras.__version__, "git_commit": git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 1),
        "phase_seconds": {n: round(v, 1) for n, v in phases.items()},
        "process_cpu_seconds": round(time.process_time(), 1),
        "first_call_cpu_seconds": FIRST_CALL_CPU_S,
    }
    print(json.dumps(result))


def teachers_ms(ms: dict, k: int, suffix: str = "") -> float:
    """Σ of the K teachers' forward passes (--quick: teacher 0's, K times)."""
    return sum(ms.get(f"teacher{i}_forward{suffix}", ms[f"teacher0_forward{suffix}"])
               for i in range(k))


def base(ms: dict, key: str, k: int) -> float:
    if key == "floor":
        return teachers_ms(ms, k) + ms["student_step"]
    if key == "floor_folded":
        return teachers_ms(ms, k, "_folded") + ms["student_step"]
    if key == "floor_k1":
        return ms["teacher0_forward"] + ms["student_step"]
    return ms[key]


def table_rows(ms: dict, k: int) -> list:
    """(label, variant, base, base label) for each row present."""
    rows = [(f"(a) ours, K={k}, full method", f"ours_k{k}", "floor", f"floor K={k}"),
            (f"(a) ours, K={k}, vs the folded floor", f"ours_k{k}", "floor_folded",
             f"folded floor K={k}"),
            (f"(a) ours, K={k}, teachers unfolded", f"ours_k{k}_unfolded", "floor", f"floor K={k}")]
    rows += [(f"(b) teacher {i} forward (inference)", f"teacher{i}_forward", "floor", f"floor K={k}")
             for i in range(k) if f"teacher{i}_forward" in ms]
    rows += [(f"(b) teacher {i} forward, BN folded", f"teacher{i}_forward_folded",
              f"teacher{i}_forward", "unfolded twin")
             for i in range(k) if f"teacher{i}_forward_folded" in ms]
    rows += [("(b) student plain train step", "student_step", "floor", f"floor K={k}"),
             ("(c) keras.distillation.Distiller, K=1", "keras_distiller_k1", "floor_k1", "floor K=1"),
             ("(c) keras.io Distiller pattern, K=1", "keras_io_k1", "floor_k1", "floor K=1"),
             ("(c) ours, hinton, K=1", "ours_hinton_k1", "floor_k1", "floor K=1"),
             ("(c) ours, hinton, K=1, teacher unfolded", "ours_hinton_k1_unfolded", "floor_k1",
              "floor K=1")]
    optional = [(f"    ours, K={k}, beta off (one backward)", f"ours_k{k}_beta_off", "floor",
                 f"floor K={k}"),
                (f"    ours, K={k}, no Gram term", f"ours_k{k}_no_feature", "floor", f"floor K={k}"),
                (f"(d) ours, K={k}, XLA", f"ours_k{k}_xla", f"ours_k{k}", "no-XLA twin"),
                ("(d) student step, XLA", "student_step_xla", "student_step", "no-XLA twin"),
                (f"    ours, K={k}, bf16 teachers", f"ours_k{k}_bf16_teachers", "floor",
                 f"floor K={k}"),
                ("    ours, hinton, K=1, bf16 teacher", "ours_hinton_k1_bf16_teacher", "floor_k1",
                 "floor K=1"),
                ("    teacher 0 forward, bf16", "teacher0_forward_bf16", "teacher0_forward",
                 "fp32 twin"),
                (f"    ours, K={k}, int8 teachers ahead", f"ours_k{k}_int8_teachers", "floor",
                 f"floor K={k}"),
                (f"      = {k} int8 TFLite teachers (taps)", f"int8_teachers_k{k}_ahead", "floor",
                 f"floor K={k}"),
                ("      + step given their outputs", f"ours_k{k}_step_given_int8_outputs", "floor",
                 f"floor K={k}"),
                ("    ours, hinton, K=1, int8 teacher ahead", "ours_hinton_k1_int8_teachers",
                 "floor_k1", "floor K=1"),
                ("      = int8 TFLite teacher (logits)", "int8_teachers_k1_ahead", "floor_k1",
                 "floor K=1"),
                ("      + step given its outputs", "ours_hinton_k1_step_given_int8_outputs",
                 "floor_k1", "floor K=1")]
    return rows + [row for row in optional if row[1] in ms]


def derived(ms: dict, k: int, pipeline) -> dict:
    """The JSON ratios from one set of medians."""
    step, floor = ms[f"ours_k{k}"], base(ms, "floor", k)
    hinton = {n: v for n, v in ms.items() if n.startswith("ours_hinton_k1")
              and not n.endswith(("_xla", "_step_given_int8_outputs"))}
    best = min(hinton, key=hinton.get)
    xla = next(((n, t) for n, t in (("ours_k%d_xla" % k, f"ours_k{k}"),
                                    ("student_step_xla", "student_step")) if n in ms), None)
    out = {
        "floor_ratio": round(step / floor, 4),
        "floor_ratio_folded_floor": round(step / base(ms, "floor_folded", k), 4),
        "unfolded_floor_ratio": round(ms[f"ours_k{k}_unfolded"] / floor, 4),
        "folded_teacher_ratio": round(teachers_ms(ms, k, "_folded") / teachers_ms(ms, k), 4),
        "speedup_vs_keras_io_unfolded": round(ms["keras_io_k1"] / ms["ours_hinton_k1_unfolded"],
                                              4),
        "speedup_vs_keras_io": round(ms["keras_io_k1"] / ms["ours_hinton_k1"], 4),
        "speedup_vs_keras_distiller": round(ms["keras_distiller_k1"] / ms["ours_hinton_k1"], 4),
        "best_speedup_vs_keras_io": round(ms["keras_io_k1"] / hinton[best], 4),
        "best_option": best,
        "xla_speedup": round(ms[xla[1]] / ms[xla[0]], 4) if xla else None,
        "xla_variant": xla[0] if xla else None,
        "keras_io_floor_ratio": round(ms["keras_io_k1"] / base(ms, "floor_k1", k), 4),
        "keras_distiller_floor_ratio": round(ms["keras_distiller_k1"] / base(ms, "floor_k1", k), 4),
        "hinton_floor_ratio": round(ms["ours_hinton_k1"] / base(ms, "floor_k1", k), 4),
        "teacher_share": round(teachers_ms(ms, k) / step, 4),
        "floor_ms": round(floor, 2),
    }
    for name, key in (("beta_split_share", f"ours_k{k}_beta_off"),
                      ("feature_share", f"ours_k{k}_no_feature")):
        if key in ms:   # that part's cost, as a fraction of the floor
            out[name] = round((step - ms[key]) / floor, 4)
    if f"ours_k{k}_bf16_teachers" in ms:
        out["bf16_teachers_floor_ratio"] = round(ms[f"ours_k{k}_bf16_teachers"] / floor, 4)
    if f"ours_k{k}_int8_teachers" in ms:
        out["int8_teachers_floor_ratio"] = round(ms[f"ours_k{k}_int8_teachers"] / floor, 4)
    if pipeline is not None:
        out["pipeline_fraction"] = round(pipeline / step, 4)
    return out


if __name__ == "__main__":
    app.run(main)
