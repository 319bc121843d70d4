"""The ResNet-32 → ResNet-8 comparison on the JAX backend, from a tar of image folders.

Runs on the GPU machine (JAX, no TensorFlow) through `run_on_gpu.sh`, or on any
machine with the JAX backend:

    KERAS_BACKEND=jax python scripts/gpu/run_experiment.py \
        --data=.carry/data/cifar10-jpeg.tar.gz --root=/tmp/kdkeras-runs \
        --preset=paper --methods=student,ours --seeds=0 --num_teachers=3

K teachers (seeds 0..K-1) are trained once, then one student per method and
seed; every run resumes from its last epoch when rerun. `<root>/summary.json`
holds the test accuracies with provenance (device, backend, versions).
`--preset=smoke` shrinks everything to seconds.
"""

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")

from absl import app, flags  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # run as a file, or by runpy
from gpu_flags import define_data_flags, table_runs  # noqa: E402

FLAGS = flags.FLAGS
define_data_flags(default_root="runs/jax")
flags.DEFINE_enum("preset", "paper", ["paper", "fast", "smoke"], "Schedule preset.")
flags.DEFINE_string("model", "resnet8", "Student architecture.")
flags.DEFINE_string("teacher_model", "resnet32", "Teacher architecture.")
flags.DEFINE_integer("num_teachers", 3, "K, the teachers of the offline ensemble (P3).")
flags.DEFINE_list("methods", ["student", "ours"], "Methods to compare (kdkeras.distill.METHODS).")
flags.DEFINE_list("table_rows", None, "Instead of --methods: the distillation rows of these "
                  "reproduce tables of the pair (e.g. 5,11,14), each with its own options and K, "
                  "in <root>/<row slug>-s<seed> (the slugs of kdkeras.training.runs.options_slug).")
flags.DEFINE_list("rows", None, "With --table_rows: only the rows with these slugs.")
flags.DEFINE_list("seeds", ["0"], "Student seeds.")
flags.DEFINE_list("teachers", None, "Saved .keras teachers to distil from instead of training "
                  "--num_teachers of them.")
flags.DEFINE_list("teacher_seeds", None, "Train only these of the K teachers (default: all); "
                  "with --methods= (empty) a process trains teachers only.")
flags.DEFINE_integer("epochs", None, "Override the preset's epochs.")
flags.DEFINE_integer("batch_size", None, "Override the preset's batch size.")
flags.DEFINE_integer("lr_decay_every", None, "Override the preset's decay period.")
flags.DEFINE_integer("train_subset", None, "Train on this many class-balanced images.")
flags.DEFINE_integer("test_subset", None, "Test on this many images.")
flags.DEFINE_integer("verbose", 2, "Keras fit verbosity.")


def main(argv):
    del argv
    from kdkeras.data.numpy_data import load_image_arrays
    from kdkeras.training.config import DistillRunConfig, resolve_config
    from kdkeras.training.runs import compare_methods

    data = load_image_arrays(FLAGS.data, name=FLAGS.name, cache=FLAGS.cache)
    base = resolve_config(DistillRunConfig, FLAGS.preset, dataset=FLAGS.name, model=FLAGS.model,
                          teacher_model=FLAGS.teacher_model, epochs=FLAGS.epochs,
                          batch_size=FLAGS.batch_size, lr_decay_every=FLAGS.lr_decay_every,
                          train_subset=FLAGS.train_subset, test_subset=FLAGS.test_subset,
                          verbose=FLAGS.verbose, workdir=FLAGS.root)
    methods = (table_runs(FLAGS.table_rows, FLAGS.model, FLAGS.rows) if FLAGS.table_rows
               else FLAGS.methods)
    summary = compare_methods(base, data, methods=methods,
                              seeds=[int(s) for s in FLAGS.seeds],
                              num_teachers=FLAGS.num_teachers, root=FLAGS.root,
                              teacher_seeds=(None if FLAGS.teacher_seeds is None else
                                             [int(s) for s in FLAGS.teacher_seeds]),
                              teacher_paths=FLAGS.teachers)
    for row in summary["teachers"] + summary["students"]:
        print(row, flush=True)


if __name__ == "__main__":
    app.run(main)
