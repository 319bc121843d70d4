"""The P3 ensemble study (issue 16, docs/ensemble.md): each variant at K=1 and K=3 over seeds.

    python experiments/ensemble.py --preset=fast --data_dir=../shared/data/cifar10-jpeg \
        --train_subset=10000 --epochs=10 --lr_decay_every=5 \
        --teachers=results/cifar10-jpeg/teachers-full/resnet32-s0/model.keras,...s1...,...s2... \
        --teacher_set=independent --variants=ours,adapters,aligned,confidence,closest,kl_to_mean \
        --seeds=0,1,2 --root=runs/ensemble/independent \
        --out=results/cifar10-jpeg/ensemble/variants-independent-10k.json

On the JAX backend (a lent GPU), add `--data_path=arrays` (and the full data:
drop --train_subset, `--preset=paper`). Runs resume; the summary (top-1 per variant and K, paired K=3 − K=1 with its
95 % interval) is written to --out with the teacher set's name.
"""

import json

from absl import app, flags

import common
from common import FLAGS

common.define_common_flags(default_model="resnet8")
flags.DEFINE_string("teacher_model", "resnet32", "Registry name of the teachers' architecture.")
flags.DEFINE_list("teachers", [], "Teacher checkpoints; K uses the first K.")
flags.DEFINE_string("teacher_set", None, "Name of the teacher set (independent, branched, "
                    "snapshot, ...), recorded in the summary.")
flags.DEFINE_list("variants", ["ours"], "Variants (kdkeras.training.ensemble_study.VARIANTS).")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Student seeds.")
flags.DEFINE_list("ks", ["1", "3"], "Teacher counts to compare (paired by seed).")
flags.DEFINE_string("root", "runs/ensemble", "Where the run directories go.")
flags.DEFINE_string("out", None, "Write the summary JSON here.")
flags.DEFINE_enum("data_path", "tfdata", ["tfdata", "arrays"],
                  "tfdata (TensorFlow backend), or arrays: --data_dir (a folder or tar) decoded "
                  "into memory (kdkeras.data.numpy_data), the path of the JAX backend / GPU box.")
flags.DEFINE_string("cache", None, "With --data_path=arrays: an .npz keeping the decoded images.")

flags.adopt_module_key_flags(common)  # --help lists the shared flags too


def main(argv):
    del argv
    common.quiet_logs()
    from kdkeras.training.config import DistillRunConfig, resolve_config
    from kdkeras.training.ensemble_study import run_study

    def run():
        dataset = common.infer_dataset(FLAGS.dataset, FLAGS.data_dir)
        overrides = common.common_overrides()
        overrides["workdir"] = overrides["workdir"] or FLAGS.root
        base = resolve_config(DistillRunConfig, FLAGS.preset, dataset,
                              teacher_model=FLAGS.teacher_model, **overrides)
        splits = None
        if FLAGS.data_path == "arrays":
            from kdkeras.data.numpy_data import load_image_arrays

            splits = load_image_arrays(FLAGS.data_dir, name=dataset, cache=FLAGS.cache)
        summary = run_study(base, FLAGS.teachers, variants=FLAGS.variants,
                            seeds=[int(s) for s in FLAGS.seeds], ks=[int(k) for k in FLAGS.ks],
                            root=FLAGS.root, splits=splits)
        summary = {"teacher_set": FLAGS.teacher_set, "teachers": FLAGS.teachers, **summary}
        print(json.dumps(summary["variants"], indent=1))
        if FLAGS.out:
            with open(FLAGS.out, "w") as f:
                json.dump(summary, f, indent=2)

    common.run_cli(run)


if __name__ == "__main__":
    app.run(main)
