"""A tiny, fully seeded training run, the same in the tests and in `fault_driver.py`.

ResNet-8 on 64 synthetic 16x16 images of 4 classes, batch 16 (4 steps an
epoch), 2 epochs with augmentation and a learning-rate step after the first:
seconds on a CPU, yet every part of the resume path (shuffle, augmentation,
momentum, BatchNorm statistics, learning-rate schedule) is exercised.
"""

from __future__ import annotations

import numpy as np

EPOCHS = 2
STEPS_PER_EPOCH = 4


def tiny_splits():
    from kdkeras.data import synthetic

    return synthetic(num_train=64, num_test=32, num_classes=4, image_shape=(16, 16, 3), seed=0)


def tiny_config(workdir, **overrides):
    from kdkeras.training.config import TrainConfig

    values = dict(model="resnet8", dataset="synthetic", workdir=str(workdir), preset="smoke",
                  seed=3, epochs=EPOCHS, batch_size=16, learning_rate=0.05, lr_decay_every=1,
                  verbose=0)
    values.update(overrides)
    return TrainConfig(**values)


def saved_weights(workdir, name="model.keras") -> list[np.ndarray]:
    import keras

    return keras.saving.load_model(f"{workdir}/{name}", compile=False).get_weights()


def assert_bit_identical(got: list, want: list) -> None:
    assert len(got) == len(want)
    for i, (a, b) in enumerate(zip(got, want)):
        assert a.shape == b.shape and a.dtype == b.dtype, i
        assert np.array_equal(a, b), (
            f"weight {i} differs: max |diff| = {np.max(np.abs(a.astype(np.float64) - b)):.3g}")


def partial_files(workdir) -> list[str]:
    """Temporary files (of an atomic write) anywhere in the run directory."""
    from pathlib import Path

    return sorted(str(p) for p in Path(workdir).rglob("*")
                  if p.is_file() and (p.name.startswith("tmp-") or p.name.endswith(".tmp")))
