"""The committed full-data ResNet-32 teachers score their recorded accuracy on the CPU path.

They were trained on the JAX/numpy path (`kdkeras.data.numpy_data`: Pillow
decoding, inputs normalised by the pipeline with the training images' own
channel statistics) on a GPU, and saved without an InputNormalization layer.
Here they run as every CPU table runs them: `kdkeras.models.load_teacher`
(which wraps each with the statistics recorded in its results.json), fed the
tf.data image-folder pipeline's pixels. If the recorded statistics, the
wrapping or the decoding differed from their training, the accuracy would
move (ImageNet's statistics cost seed 0 a point: 78.81% against 79.64%; the
fast JPEG IDCT, 0.17 points the other way).
"""

import json

import numpy as np
import pytest

from helpers import CIFAR10_JPEG, REPO
from kdkeras import models

TEACHERS = REPO / "results" / "cifar10-jpeg" / "teachers-full"
# GPU (where they were scored) and CPU round-off may flip a borderline image or two.
IMAGES_OF_SLACK = 3

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cifar10_test():
    if not CIFAR10_JPEG.is_dir():
        pytest.skip(f"CIFAR-10 (JPEG) not found at {CIFAR10_JPEG} (the workplace keeps it at "
                    "../shared/data/cifar10-jpeg beside the checkout; or set KDKERAS_CIFAR10_JPEG)")
    from kdkeras.data import load_dataset, make_input_pipeline

    splits = load_dataset("cifar10_jpeg", data_dir=CIFAR10_JPEG, cache=False)  # test split only
    ds = make_input_pipeline(splits.test, training=False, batch_size=500)
    x, y = (np.concatenate(parts) for parts in zip(*ds.as_numpy_iterator()))
    assert x.shape == (10_000, 32, 32, 3) and x.max() > 250.0  # pixels, not normalised values
    return x, y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_teacher_scores_its_recorded_accuracy_on_the_cpu_path(cifar10_test, seed):
    x, y = cifar10_test
    run = TEACHERS / f"resnet32-s{seed}"
    recorded = json.loads((run / "results.json").read_text())
    teacher = models.load_teacher(run)
    assert teacher.layers[1].name == "input_normalization"
    assert models.input_statistics(teacher) == {k: recorded["input_normalization"][k]
                                                for k in ("mean", "std")}
    predictions = np.argmax(teacher.predict(x, batch_size=500, verbose=0), axis=-1)
    correct = int(np.sum(predictions == y))
    assert abs(correct - round(recorded["test_accuracy"] * len(y))) <= IMAGES_OF_SLACK, (
        f"teacher seed {seed}: {correct / len(y):.4f} here, "
        f"{recorded['test_accuracy']:.4f} recorded")


def test_recorded_statistics_are_the_training_images_channel_statistics():
    """What numpy_data computed: channel_stats of the 50,000 Pillow-decoded training images."""
    if not CIFAR10_JPEG.is_dir():
        pytest.skip(f"CIFAR-10 (JPEG) not found at {CIFAR10_JPEG}")
    from kdkeras.data import load_dataset

    splits = load_dataset("image_folder", data_dir=CIFAR10_JPEG, cache=True)  # stats=None
    assert splits.num_train == 50_000
    for seed in range(3):
        recorded = json.loads((TEACHERS / f"resnet32-s{seed}" / "results.json").read_text())
        np.testing.assert_allclose(splits.mean, recorded["input_normalization"]["mean"], rtol=1e-12)
        np.testing.assert_allclose(splits.std, recorded["input_normalization"]["std"], rtol=1e-12)
