"""A data path without TensorFlow: image folders decoded by Pillow, batches as arrays.

The GPU machine this workplace sometimes lends has JAX but no TensorFlow, so
`tf.data` (`make_input_pipeline`) is not available there. This module gives the
same data to `Distiller.fit` on any backend:

    data = load_image_arrays("cifar10-jpeg.tar.gz", cache="/tmp/cifar10.npz")
    train = ArrayBatches(data.x_train, data.y_train, batch_size=128, training=True, seed=0)
    test = ArrayBatches(data.x_test, data.y_test, batch_size=128, training=False)
    student = kdkeras.models.get("resnet8", num_classes=data.num_classes,
                                 input_normalization=(data.mean, data.std))
    distiller.fit(train, validation_data=test, epochs=200)

* `load_image_arrays` reads a `<root>/<split>/<class>/<image>` tree, from a
  folder or from one tar (`.tar`, `.tar.gz`, ...) of it, and decodes every image
  once with Pillow into uint8 arrays; `cache=` keeps them as one `.npz` so the
  next run skips decoding. (The CIFAR-10 JPEG folder is 55 MB of JPEGs, 20 MB
  as a `.tar.gz`, 184 MB decoded: carry the tar, decode where it runs.)
  Labels are the sorted class-folder names, as in `load_image_folder`.
* `ArrayBatches` shuffles and batches on the host, then moves each batch to
  the device and augments it there: the paper's shift, rotation and flip as
  Keras preprocessing layers (`RandomFlip`, `RandomRotation`,
  `RandomTranslation`), one compiled function under JAX. Batches are float32
  pixel values in [0, 255]; models normalise them (their
  `kdkeras.models.InputNormalization` layer, built with `data.mean`/`data.std`).

Augmentation against `kdkeras.data.augment` (the tf.data path): the same law
(`augment_spec.PAPER_AUGMENTATION`: a flip with probability 1/2, then a rotation
uniform in ±15° about the centre, then a shift of up to 12.5 % of the side in whole
pixels, reflected borders), drawn from other random numbers, so the two paths give
equally distributed, not equal, images for one seed. For the same draws they differ
in one place: here the rotation (bilinear) and the shift (nearest, i.e. whole
pixels) are two resamplings, there one affine warp. So where a pixel's source after
the shift lies inside the image the two agree to float round-off, and the border
strip the shift brings in (|shift| pixels wide) reflects the rotated image here,
the image there: the same when nothing is rotated
(`tests/data/test_augment.py` pins both). The `"constant"` fill is 0 (black) here.

Nothing here imports TensorFlow (`tests/distill/test_jax_backend.py` checks).
"""

from __future__ import annotations

import dataclasses
import functools
import io
import math
import os
import tarfile
from pathlib import Path

import keras
import numpy as np

from kdkeras.data.augment_spec import PAPER_AUGMENTATION as _PAPER
from kdkeras.data.errors import DataFormatError, DataNotFoundError
from kdkeras.data.splits import channel_stats
from kdkeras.data.subset import select_subset

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


@dataclasses.dataclass(frozen=True)
class ArraySplits:
    """Decoded train/test images (uint8 NHWC) and labels (int32), with what is known of them.

    `mean`/`std` are per-channel statistics in [0, 1] units (`channel_stats` of
    the decoded training images unless given): build the models trained on
    these arrays with them (`kdkeras.models.get(..., input_normalization=(mean, std))`).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple
    source: str
    mean: tuple
    std: tuple

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple:
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def num_train(self) -> int:
        return len(self.x_train)

    @property
    def num_test(self) -> int:
        return len(self.x_test)


def load_image_arrays(
    source: str | os.PathLike,
    *,
    name: str = "image_folder",
    cache: str | os.PathLike | None = None,
    image_size: tuple[int, int] | None = None,
    mean: tuple | None = None,
    std: tuple | None = None,
    train_split: str = "train",
    test_split: str = "test",
) -> ArraySplits:
    """Decodes a `<split>/<class>/<image>` tree (a folder or a tar of one) into arrays.

    Args:
      source: the root folder, or a tar file (any compression `tarfile` reads)
        whose members are `[<top>/]<split>/<class>/<image>`.
      name: the `name` of the returned splits.
      cache: an `.npz` path. If it exists it is loaded instead of `source`;
        otherwise the decoded arrays are written there (atomically).
      image_size: `(height, width)` to resize every image to (bilinear).
        `None`: every image must have the size of the first one.
      mean, std: per-channel normalisation statistics in [0, 1] units. `None`:
        those of the training images (as `load_image_folder` does by default).
      train_split, test_split: the split folder names.

    Raises:
      DataNotFoundError: `source` is missing or holds no images.
      DataFormatError: a split is missing, or images differ in size.
    """
    source = Path(source).expanduser()
    cache = Path(cache).expanduser() if cache is not None else None
    if cache is not None and cache.exists():
        with np.load(cache, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        origin = f"{arrays.pop('source')} (decoded once, cached in {cache})"
    else:
        arrays = _decode(source, image_size, (train_split, test_split))
        origin = f"{source} (decoded with Pillow)"
        arrays["source"] = np.asarray(str(source))
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(f"tmp-{cache.name}")
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
            os.replace(tmp, cache)
        arrays.pop("source")
    if mean is None or std is None:
        mean, std = channel_stats(arrays["x_train"])
    return ArraySplits(name=name, x_train=arrays["x_train"], y_train=arrays["y_train"],
                       x_test=arrays["x_test"], y_test=arrays["y_test"],
                       class_names=tuple(str(c) for c in arrays["class_names"]),
                       source=str(origin), mean=tuple(float(m) for m in mean),
                       std=tuple(float(s) for s in std))


def _decode(source: Path, image_size, splits) -> dict:
    layout = f"{source}: <{splits[0]}|{splits[1]}>/<class>/<image>.jpg|png"
    if not source.exists():
        raise DataNotFoundError(f"No image folder or tar at {layout}.")
    files = _tar_members(source) if source.is_file() else _folder_files(source)
    by_split = {s: {} for s in splits}
    for key, read in files:
        parts = key.split("/")
        # [<top>/]<split>/<class>/<image>: find the split among the last three parts.
        if len(parts) >= 3 and parts[-3] in by_split and key.lower().endswith(IMAGE_SUFFIXES):
            by_split[parts[-3]][(parts[-2], parts[-1])] = read
    if not any(by_split.values()):
        raise DataNotFoundError(f"No images under {layout}.")
    for split, found in by_split.items():
        if not found:
            raise DataFormatError(f"No '{split}' images in {layout}.")
    class_names = sorted({c for found in by_split.values() for c, _ in found})
    label_of = {c: i for i, c in enumerate(class_names)}
    out = {"class_names": np.asarray(class_names)}
    shape = None if image_size is None else (int(image_size[0]), int(image_size[1]))
    for split, prefix in zip(splits, ("train", "test")):
        keys = sorted(by_split[split])
        images = []
        for key in keys:
            image = _decode_one(by_split[split][key](), shape)
            if shape is None:
                shape = image.shape[:2]
            if image.shape[:2] != tuple(shape):
                raise DataFormatError(
                    f"Image {split}/{'/'.join(key)} in {source} is {image.shape[:2]}, the "
                    f"others {tuple(shape)}. Pass image_size=(height, width) to resize.")
            images.append(image)
        out[f"x_{prefix}"] = np.stack(images)
        out[f"y_{prefix}"] = np.asarray([label_of[c] for c, _ in keys], np.int32)
    return out


def _decode_one(data: bytes, size) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image = image.convert("RGB")
        if size is not None and image.size != (size[1], size[0]):
            image = image.resize((size[1], size[0]), Image.BILINEAR)
        return np.asarray(image, np.uint8)


def _folder_files(root: Path):
    for path in root.rglob("*"):
        if path.is_file():
            yield path.relative_to(root).as_posix(), path.read_bytes


def _tar_members(path: Path):
    # Members are read once, in archive order, into memory (55 MB for CIFAR-10).
    with tarfile.open(path) as tar:
        for member in tar:
            if member.isfile():
                data = tar.extractfile(member).read()
                yield member.name, (lambda data=data: data)


def balanced_subset(images: np.ndarray, labels: np.ndarray, size: int | None, seed: int = 0):
    """`size` class-balanced examples (`kdkeras.data.subset.select_subset`); all if None."""
    if size is None or size >= len(labels):
        return images, labels
    keep = select_subset(labels, size, seed=seed)
    return images[keep], labels[keep]


def augmentation_layers(shift: float = _PAPER.shift, rotation: float = _PAPER.rotation,
                        flip: bool = _PAPER.flip, fill_mode: str = _PAPER.fill_mode,
                        seed: int | None = None) -> keras.Sequential:
    """The paper's shift, rotation and flip as Keras preprocessing layers (any backend).

    `shift` is a fraction of the side (0.125 = 4 px of 32), applied in whole
    pixels (nearest-neighbour sampling); `rotation` is in degrees. The layers
    get seeds `seed`, `seed + 1`, `seed + 2`: one seed for all would draw the
    same numbers for the flip, the angle and the shift.
    """
    seeds = iter(range(seed, seed + 3)) if seed is not None else iter([None] * 3)
    layers = []
    if flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=next(seeds)))
    if rotation:
        layers.append(keras.layers.RandomRotation(rotation / 360.0, fill_mode=fill_mode,
                                                  interpolation="bilinear", seed=next(seeds)))
    if shift:
        layers.append(keras.layers.RandomTranslation(shift, shift, fill_mode=fill_mode,
                                                      interpolation="nearest", seed=next(seeds)))
    return keras.Sequential(layers, name="augmentation")


class ArrayBatches(keras.utils.PyDataset):
    """Shuffled, augmented batches of in-memory uint8 images, for `fit`.

    Host side: a permutation per epoch, gather a batch. Device side: cast to
    float32, augment (training). Batches come out as backend tensors,
    `(float32 (B, H, W, C) pixel values in [0, 255], int32 (B,))`: models
    normalise inside (`kdkeras.models.InputNormalization`). Augmentation fills
    pixels from outside the image by reflection (no fill colour).

    Determinism: with an integer `seed`, epoch e's order depends on (seed, e)
    and batch i's augmentation on (seed, e, i) alone, whatever order batches
    are asked for in; so a run resumed at epoch e (`initial_epoch=e`) sees the
    batches the uninterrupted run saw, as `make_input_pipeline` does. Keras
    calls `on_epoch_end` after every epoch, which moves to the next one.

    Args:
      images, labels: uint8 (N, H, W, C) and integer (N,) arrays.
      batch_size: examples per batch.
      training: shuffle, augment (if `augment`) and drop the last partial batch.
      seed: seed of the shuffle and the augmentation (None: a random one).
      augment: apply `augmentation_layers(**augment_options)` when training.
      subset: keep this many class-balanced examples (chosen with `subset_seed`,
        whatever `seed`); None or at least the data size keeps all.
      initial_epoch: the epoch the first batches belong to.
    """

    # The seed generators' counters for batch i of epoch e start at
    # (e << 20) + 8·i: room for 131,072 batches an epoch and 4,096 epochs in
    # uint32, each batch drawing at most 8 times per layer (it draws 1 or 2).
    _EPOCH_STRIDE, _BATCH_STRIDE = 1 << 20, 8

    def __init__(self, images, labels, *, batch_size: int, training: bool,
                 seed: int | None = None, augment: bool = True,
                 subset: int | None = None, subset_seed: int = 0,
                 drop_remainder: bool | None = None, initial_epoch: int = 0,
                 **augment_options):
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1. Received: batch_size={batch_size}")
        images, labels = balanced_subset(np.asarray(images), np.asarray(labels), subset,
                                         seed=subset_seed)
        if images.dtype != np.uint8 or images.ndim != 4:
            raise ValueError("images must be uint8 (N, H, W, C). Received: "
                             f"dtype={images.dtype}, shape={images.shape}")
        self.images, self.labels = images, labels.astype(np.int32)
        self.batch_size = int(batch_size)
        self.training = training
        self.drop_remainder = training if drop_remainder is None else drop_remainder
        if len(self) < 1:
            raise ValueError(f"batch_size={batch_size} is larger than the data "
                             f"({len(images)} examples) and the last partial batch is dropped.")
        self.seed = int(np.random.SeedSequence().entropy % (1 << 31)) if seed is None else seed
        augmentation = tuple(sorted(augment_options.items())) if training and augment else None
        # One compiled transform per augmentation, shared by every ArrayBatches:
        # the seeds travel in the state, so the layers' own seeds do not matter.
        self._transform, self._num_generators = _transform_for(augmentation)
        self._start_epoch(initial_epoch)

    @property
    def num_examples(self) -> int:
        return len(self.labels)

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_remainder else math.ceil(n / self.batch_size)

    def _start_epoch(self, epoch: int):
        self.epoch = int(epoch)
        n = len(self.labels)
        self._order = (np.random.default_rng([self.seed, self.epoch]).permutation(n)
                       if self.training else np.arange(n))

    def _seed_state(self, index: int) -> list:
        """The k-th seed generator's state for batch `index` of this epoch: [seed + k, counter]."""
        counter = self.epoch * self._EPOCH_STRIDE + index * self._BATCH_STRIDE
        return [np.asarray([(self.seed + k) % (1 << 32), counter], np.uint32)
                for k in range(self._num_generators)]

    def on_epoch_end(self):
        self._start_epoch(self.epoch + 1)

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(f"Batch {index} out of range (0..{len(self) - 1}).")
        rows = self._order[index * self.batch_size:(index + 1) * self.batch_size]
        x = self._transform(self.images[rows], self._seed_state(index))
        return x, keras.ops.convert_to_tensor(self.labels[rows])


@functools.lru_cache(maxsize=None)
def _transform_for(augmentation):
    """`(transform, number of seed generators)` for `augmentation` (options, or None: none).

    `transform(uint8 images, seed states)` casts to float32 and augments with the
    given seed-generator states (pixels stay in [0, 255]); compiled as one XLA
    program under JAX, plain elsewhere.
    """
    layers = None
    if augmentation is not None:
        layers = augmentation_layers(seed=0, **dict(augmentation))
        layers.build((None, None, None, 3))
    num_generators = len(layers.non_trainable_variables) if layers is not None else 0

    def transform(images, seed_state):
        x = keras.ops.cast(images, "float32")
        if layers is not None:
            x, _ = layers.stateless_call([], list(seed_state), x, training=True)
        return x

    if keras.backend.backend() == "jax":
        import jax

        transform = jax.jit(transform)
    return transform, num_generators
