"""Albumentations pipelines assembled from config: the augmentations, then normalise and tensorise."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import albumentations as A
import cv2
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2

from seglab.errors import ConfigError

Steps = Mapping[str, Any] | Sequence[Any] | None
# data.mean/std's defaults: ImageNet's statistics, what pretrained encoders expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def pipeline_steps(steps: Steps) -> list[Any]:
    """The steps of `data.train_transforms`/`data.val_transforms` in pipeline order.

    The configs name each step (`{crop: {_target_: albumentations.RandomCrop, ...}, ...}`, in
    order), so one step can be changed (`data.train_transforms.crop.height=384`) or left out
    (`~data.train_transforms.jitter`, or `...jitter=null`: null entries are skipped). A plain
    list, as older checkpoints and users' own configs hold, is taken as it is.
    """
    if steps is None:
        return []
    if isinstance(steps, Mapping):
        if "_target_" in steps:
            raise ConfigError(
                f"a transforms config names its steps ({{name: {{_target_: ...}}}}); got one "
                f"step ({steps['_target_']}) where the mapping of steps belongs"
            )
        return [step for step in steps.values() if step is not None]
    if isinstance(steps, str | bytes):
        raise ConfigError(f"transforms must be a mapping name → step or a list, got {steps!r}")
    return [step for step in steps if step is not None]


class Normalize(A.Normalize):
    """albumentations' Normalize, with 8-bit colour images through one cv2 lookup in a table of
    all channels: albucore looks each channel up on its own strided view and merges them, three
    to five times slower at 512² (a fifth of an Inria crop's pipeline). The table is albucore's,
    so the values are the same to the bit; anything else goes to albumentations."""

    def apply(self, img: np.ndarray, **params: Any) -> np.ndarray:
        channels = img.shape[-1] if img.ndim == 3 else 0
        if not (
            self.normalization == "standard"
            and img.dtype == np.uint8
            and 1 < channels <= 4
            and np.size(self.mean_np) == channels
            and np.size(self.denominator) == channels
        ):
            return super().apply(img, **params)
        levels = np.arange(256, dtype=np.float32)[:, None]
        mean = np.asarray(self.mean_np, dtype=np.float32).reshape(1, -1)
        table = (levels - mean) * np.asarray(self.denominator, dtype=np.float32).reshape(1, -1)
        return cv2.LUT(np.ascontiguousarray(img), table.reshape(1, 256, channels))


class NormalizeFloatOnly(Normalize):
    """Normalize for float images; 8-bit ones pass through unchanged, to be normalised a batch
    at a time on the device (`normalize_uint8`). A worker then ships a quarter of the bytes
    and skips a pass that took a fifth of an Inria crop's pipeline."""

    def apply(self, img: np.ndarray, **params: Any) -> np.ndarray:
        return img if img.dtype == np.uint8 else super().apply(img, **params)


def normalization_table(
    mean: Sequence[float], std: Sequence[float], max_pixel_value: float = 255.0
) -> torch.Tensor:
    """C×256 float32: what `Normalize` makes of each 8-bit value in each channel, by applying
    it to the 256 values, so normalising on the device gives the worker's floats to the bit."""
    levels = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], len(mean), axis=2)
    step = Normalize(mean=tuple(mean), std=tuple(std), max_pixel_value=max_pixel_value)
    table = np.asarray(step(image=levels)["image"], dtype=np.float32).reshape(256, len(mean))
    return torch.from_numpy(np.ascontiguousarray(table.T))


def normalize_uint8(images: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """8-bit images (…×C×H×W, on any device) as float32 normalised by `table` (C×256, on the
    images' device): one gather, the same floats `Normalize` gives in a worker."""
    channels = images.shape[-3]
    if table.shape[0] != channels:
        raise ConfigError(
            f"data.mean/data.std give {table.shape[0]} channels but the images have {channels}: "
            "expected one value per image channel (data.in_channels)"
        )
    offsets = torch.arange(0, 256 * channels, 256, device=images.device, dtype=torch.int32)
    return table.reshape(-1)[images.int() + offsets.view(channels, 1, 1)]


class RandomRotate90(A.RandomRotate90):
    """albumentations' RandomRotate90 (same draws, same pixels) with cv2.rotate for images and
    masks of up to 4 channels: numpy's rotated view made contiguous costs ten times as much
    (1.6 ms of a 512² crop and its mask)."""

    _CV2 = {1: cv2.ROTATE_90_COUNTERCLOCKWISE, 2: cv2.ROTATE_180, 3: cv2.ROTATE_90_CLOCKWISE}

    def apply(self, img: np.ndarray, factor: int, **params: Any) -> np.ndarray:
        if factor % 4 == 0:
            return img
        if img.ndim == 2 or (img.ndim == 3 and img.shape[-1] <= 4):
            rotated = cv2.rotate(np.ascontiguousarray(img), self._CV2[factor % 4])
            return rotated.reshape(*rotated.shape[:2], *img.shape[2:])
        return super().apply(img, factor, **params)


class SeededCompose(A.Compose):
    """albumentations' Compose, its random state taken from torch's seed of the process using it.

    Compose keeps its own generator, seeded from OS entropy unless given a seed, so a run's
    `seed` did not fix its augmentations, and DataLoader workers, forked with a copy of one
    generator, drew the same augmentations as one another. Before a call in a new process it is
    reseeded from the worker's seed (`get_worker_info().seed`: the DataLoader's base seed, which
    Lightning's seeding fixes, plus the worker id), or `torch.initial_seed()` outside workers.
    """

    _seeded_from: int | None = None

    def __call__(self, *args: Any, **data: Any) -> dict[str, Any]:
        info = torch.utils.data.get_worker_info()
        seed = (info.seed if info is not None else torch.initial_seed()) % 2**32
        if seed != self._seeded_from:
            self.set_random_seed(seed)
            self._seeded_from = seed
        return super().__call__(*args, **data)


def build_transform(
    steps: Steps,
    mean: Sequence[float],
    std: Sequence[float],
    max_pixel_value: float = 255.0,
    uint8_on_device: bool = False,
) -> A.Compose:
    """Compose instantiated augmentation steps with the dataset's normalisation.

    Normalisation lives here rather than in each config so that training, validation and
    inference (which read `data.mean`/`data.std`) can never disagree. `uint8_on_device` leaves
    8-bit images as uint8 tensors for `normalize_uint8` after the batch reaches the device.
    """
    normalize = NormalizeFloatOnly if uint8_on_device else Normalize
    return SeededCompose(
        [
            *pipeline_steps(steps),
            normalize(mean=tuple(mean), std=tuple(std), max_pixel_value=max_pixel_value),
            ToTensorV2(),
        ],
    )


def instantiate_steps(steps: Steps) -> list[A.BasicTransform]:
    """Augmentation configs (name → `{_target_: albumentations.X, ...}`, or a list of them, as
    a checkpoint stores `data.train_transforms`/`data.val_transforms`) instantiated as Hydra
    does when it builds the DataModule from the data config, so a tool outside training gets
    the same steps, in the same order."""
    import hydra.utils

    return list(hydra.utils.instantiate(pipeline_steps(steps), _convert_="all"))
