"""Trains a registry model from scratch with the paper's recipe.

    python experiments/train.py --model=resnet32 --preset=fast \
        --data_dir=../shared/data/cifar10-jpeg --workdir=runs/resnet32

Writes <workdir>/model.keras, config.json, history.{csv,json}, results.json
(with provenance), tensorboard/ and checkpoints/ (resume with --resume).
"""

from absl import app, flags

import common
from common import FLAGS

common.define_common_flags(default_model="resnet8")
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
        config = resolve_config(TrainConfig, FLAGS.preset, dataset, **overrides)
        results = train_model(config)
        print(f"{config.model}: test accuracy {results['test_accuracy']:.4f} "
              f"after {config.epochs} epochs -> {config.workdir}/model.keras")

    common.run_cli(run)


if __name__ == "__main__":
    app.run(main)
