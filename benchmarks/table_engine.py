"""A table's rows trained together on the table engine against the same rows trained apart.

A benchmark, not a test: it prints a table, then one line of JSON. JAX backend.

    KERAS_BACKEND=jax .venv/bin/python benchmarks/table_engine.py --quick   # CPU, minutes
    KERAS_BACKEND=jax python benchmarks/table_engine.py --batch_size=128 --steps=50  # a GPU

The rows are reproduce Table 14's (ResNet-32 → ResNet-8, "Combinations": the
student alone and seven distillations with K = 1 or 3, β on and off, a
student-side adapter per teacher), with three ResNet-32 teachers, on random
uint8 images of CIFAR's shape (a step's cost does not depend on the weights
or the pixels). Three ways to train them, measured side by side in one
process, round-robin (every variant once per round, the median over rounds),
so that a change of load on a shared machine hits them alike:

(a) together: one `TableEngine` with every row: one program per `--steps`
    steps, each teacher once per batch, batches made on the device;
(b) apart, engine: one `TableEngine` per row, run one after the other (each
    runs its own teachers; the same device data path);
(c) apart, today's path: each row's `Distiller.fit` on `ArrayBatches` (host
    shuffling, Keras preprocessing layers, the Keras JAX trainer), one row
    after the other, as one process per row ran each row so far.

A variant's time per round is the sum over its programs (one for (a), one per
row for (b), (c)); images per second count student images (rows × steps ×
batch). JSON keys: `table_engine_speedup` = (c) / (a) (against how rows ran
until now), `speedup_vs_engine_apart` = (b) / (a) (what sharing the teachers
and one program gives on its own); the same in CPU time under
`cpu_time_ratios`; `compile_seconds` (a's one program, b's per row);
`projected_table_seconds` = (a)'s time per step × steps of `--project_epochs`
epochs of `--project_images` images + its compile; `flops_per_student_image`
(analytical: see `_flops`) and, against `--peak_tflops` (default: the
device's fp32 and tf32 peaks where known), the fraction of peak reached.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

# Dense peaks of NVIDIA's data sheets (TFLOP/s): fp32 on the CUDA cores, tf32 on the
# tensor cores without sparsity (XLA's default float32 matmuls and convolutions on
# GPU may use tf32).
PEAK_TFLOPS = {"H200": {"fp32": 67.0, "tf32": 494.0}, "H100": {"fp32": 67.0, "tf32": 494.0},
               "A100": {"fp32": 19.5, "tf32": 156.0}}


def _table_runs(number: int = 14, student: str = "resnet8"):
    from kdkeras.reproduce.settings import student_runs

    return student_runs([number], student)


def _flops(teacher, student, rows, forwards: int) -> dict:
    """Analytical FLOPs per student image of one table step (2 FLOPs per multiply-add).

    Teachers: one forward (inference) per teacher forward of the batch, shared by
    the rows. Each row: a student forward, and one backward pass (≈ 2 forwards)
    per gradient taken (two for rows with the β split, one otherwise). The loss
    terms, Grams, optimizer and augmentation are left out (small here).
    """
    from kdkeras.utils.cost import count_macs

    t, s = 2 * count_macs(teacher), 2 * count_macs(student)
    student_flops = sum(s * (1 + 2 * (2 if r.distiller.has_kd
                                      and r.distiller.config.beta_mode != "off" else 1))
                        for r in rows)
    per_batch_image = forwards * t + student_flops
    return {"teacher_forward": t, "student_forward": s,
            "per_batch_image": per_batch_image, "per_student_image": per_batch_image / len(rows)}


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=4, help="steps per timed call")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--image_size", type=int, default=32)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--apart", default="engine,fit", help="apart variants: engine, fit")
    parser.add_argument("--project_epochs", type=int, default=200)
    parser.add_argument("--project_images", type=int, default=50_000)
    parser.add_argument("--peak_tflops", type=float, default=None)
    parser.add_argument("--quick", action="store_true", help="batch 16, 2 steps, 2 rounds")
    parser.add_argument("--load", default=None, help="the machine's load, recorded as given")
    args = parser.parse_args()
    if args.quick:
        args.batch_size, args.steps, args.rounds = 16, 2, 2

    from kdkeras import models
    from kdkeras.data.numpy_data import ArrayBatches
    from kdkeras.training.config import DistillRunConfig, resolve_config
    from kdkeras.training.table_engine import TableEngine
    from kdkeras.training.table_rows import build_rows

    shape = (args.image_size, args.image_size, 3)
    n = args.batch_size * args.steps
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n,) + shape, dtype=np.uint8)
    labels = rng.integers(0, args.classes, n).astype(np.int32)
    stats = None   # kdkeras models normalise their own pixels (input_normalization)
    teachers = []
    for k in range(3):
        keras.utils.set_random_seed(100 + k)
        teachers.append(models.get("resnet32", num_classes=args.classes, input_shape=shape))
    config = resolve_config(DistillRunConfig, "paper", dataset="cifar10_jpeg",
                            batch_size=args.batch_size)
    runs = _table_runs()

    def engine(rows):
        return TableEngine(rows, images, labels, batch_size=args.batch_size,
                           learning_rate_at=config.learning_rate_at, stats=stats)

    def build(selected):
        return build_rows(selected, teachers, config, num_classes=args.classes,
                          input_shape=shape)

    def run(e):
        jax.block_until_ready(e.run_steps(0, args.steps))

    variants, compile_seconds = {}, {}
    together = engine(build(runs))
    wall, _ = _timed(lambda: run(together))
    compile_seconds["together"] = wall
    variants["together"] = [lambda: run(together)]
    apart = set(filter(None, args.apart.split(",")))
    if "engine" in apart:
        engines = [engine(build([r])) for r in runs]
        compile_seconds["apart_engine"] = [_timed(lambda e=e: run(e))[0] for e in engines]
        variants["apart_engine"] = [lambda e=e: run(e) for e in engines]
    if "fit" in apart:
        fits = []
        for row in build(runs):
            batches = ArrayBatches(images, labels, batch_size=args.batch_size, training=True,
                                   seed=0)
            fits.append(lambda d=row.distiller, b=batches: d.fit(b, epochs=1, verbose=0))
        compile_seconds["apart_fit"] = [_timed(f)[0] for f in fits]
        variants["apart_fit"] = fits

    times = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, calls in variants.items():
            measured = [_timed(c) for c in calls]
            times[name].append((sum(m[0] for m in measured), sum(m[1] for m in measured)))
    median = {name: (statistics.median(t[0] for t in ts), statistics.median(t[1] for t in ts))
              for name, ts in times.items()}
    student_images = len(runs) * args.steps * args.batch_size
    rate = {name: student_images / m[0] for name, m in median.items()}

    device = jax.devices()[0]
    flops = _flops(teachers[0], together.rows[0].distiller.student, together.rows,
                   together.teacher_forwards_per_batch())
    achieved = flops["per_student_image"] * rate["together"]
    peaks = ({"given": args.peak_tflops} if args.peak_tflops else
             next((v for k, v in PEAK_TFLOPS.items() if k in device.device_kind), {}))
    step_seconds = median["together"][0] / args.steps
    steps_per_epoch = args.project_images // args.batch_size
    print(f"{len(runs)} rows of Table 14, batch {args.batch_size}, {args.steps} steps a call, "
          f"{args.rounds} rounds, {device.platform}:{device.device_kind}")
    for name, (w, c) in median.items():
        print(f"  {name:14s} {w:8.3f} s wall {c:8.3f} s cpu  {rate[name]:9.1f} student images/s")
    result = {
        "benchmark": "table_engine",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "device": f"{device.platform}:{device.device_kind}",
        "machine": {"cpu_count": os.cpu_count(), "processor": platform.processor() or None,
                    "load": args.load, "loadavg_at_end": list(os.getloadavg())},
        "versions": {"jax": jax.__version__, "keras": keras.__version__},
        "rows": [r.name for r in runs], "batch_size": args.batch_size, "steps": args.steps,
        "rounds": args.rounds, "image_shape": list(shape),
        "teacher_forwards_per_batch": together.teacher_forwards_per_batch(),
        "teacher_forwards_per_batch_apart": sum(len(r.distiller.teachers) for r in together.rows
                                                if r.distiller.has_kd),
        "seconds_per_call": {k: v[0] for k, v in median.items()},
        "student_images_per_second": rate,
        "compile_seconds": compile_seconds,
        "projected_table_seconds": step_seconds * steps_per_epoch * args.project_epochs
        + compile_seconds["together"],
        "projection": f"{args.project_epochs} epochs of {args.project_images} images, batch "
                      f"{args.batch_size}, evaluation left out",
        "flops_per_student_image": flops["per_student_image"], "flops": flops,
        "achieved_tflops": achieved / 1e12,
        "fraction_of_peak": {k: achieved / (v * 1e12) for k, v in peaks.items()},
        "cpu_time_ratios": {},
    }
    for name in ("apart_fit", "apart_engine"):
        if name in median:
            key = "table_engine_speedup" if name == "apart_fit" else "speedup_vs_engine_apart"
            result[key] = median[name][0] / median["together"][0]
            result["cpu_time_ratios"][key] = median[name][1] / median["together"][1]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
