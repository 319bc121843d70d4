"""Trains a registry model from scratch with the paper's recipe.

    python experiments/train.py --model=resnet32 --preset=fast \
        --data_dir=../shared/data/cifar10-jpeg --workdir=runs/resnet32

    # branched teachers (docs/ensemble.md): a parent saves epoch 4, teachers continue from it
    python experiments/train.py --model=resnet32 ... --snapshot_epochs=4 --workdir=runs/parent
    python experiments/train.py --model=resnet32 ... --init_from=runs/parent/snapshots/epoch-0004.keras \
        --start_epoch=4 --data_order_seed=1 --workdir=runs/branch-1

Writes <workdir>/model.keras, config.json, history.{csv,json}, results.json
(with provenance), tensorboard/ and checkpoints/ (resume with --resume).
"""

from absl import app, flags

import common
from common import FLAGS

common.define_common_flags(default_model="resnet8")
# Teacher recipes for P3 (kdkeras.training.teacher_recipes, docs/ensemble.md).
flags.DEFINE_string("init_from", None, "Start from this saved model's weights (a .keras file, "
                    "e.g. another run's snapshots/epoch-0004.keras): a branched teacher.")
flags.DEFINE_integer("start_epoch", None, "Continue the schedule at this epoch (0-based; with "
                     "--init_from a snapshot of that epoch).")
flags.DEFINE_integer("data_order_seed", None, "Seed of the data order and augmentation "
                     "(default: --seed, which also draws the initial weights).")
flags.DEFINE_list("snapshot_epochs", None, "Save the model after these epochs as "
                  "<workdir>/snapshots/epoch-NNNN.keras (snapshot teachers, branch points).")
flags.adopt_module_key_flags(common)  # --help lists the shared flags too


def main(argv):
    del argv
    common.quiet_logs()
    from kdkeras.training.config import TrainConfig, resolve_config
    from kdkeras.training.runs import train_model

    def run():
        dataset = common.infer_dataset(FLAGS.dataset, FLAGS.data_dir)
        overrides = common.common_overrides()
        overrides["workdir"] = overrides["workdir"] or f"runs/train/{FLAGS.model}-s{FLAGS.seed}"
        if FLAGS.snapshot_epochs:
            overrides["snapshot_epochs"] = tuple(int(e) for e in FLAGS.snapshot_epochs)
        config = resolve_config(TrainConfig, FLAGS.preset, dataset, **overrides)
        results = train_model(config)
        print(f"{config.model}: test accuracy {results['test_accuracy']:.4f} "
              f"after {config.epochs} epochs -> {config.workdir}/model.keras")

    common.run_cli(run)


if __name__ == "__main__":
    app.run(main)
