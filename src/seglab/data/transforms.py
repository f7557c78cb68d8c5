"""Albumentations pipelines assembled from config: the augmentations, then normalise and tensorise."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import albumentations as A
from albumentations.pytorch import ToTensorV2


def build_transform(
    steps: Sequence[A.BasicTransform] | None,
    mean: Sequence[float],
    std: Sequence[float],
    max_pixel_value: float = 255.0,
) -> A.Compose:
    """Compose instantiated augmentation steps with the dataset's normalisation.

    Normalisation lives here rather than in each config so that training, validation and
    inference (which read `data.mean`/`data.std`) can never disagree.
    """
    return A.Compose(
        [
            *(steps or []),
            A.Normalize(mean=tuple(mean), std=tuple(std), max_pixel_value=max_pixel_value),
            ToTensorV2(),
        ],
    )


def instantiate_steps(steps: Sequence[Any] | None) -> list[A.BasicTransform]:
    """Augmentation configs (`{_target_: albumentations.X, ...}`, as a checkpoint stores
    `data.train_transforms`/`data.val_transforms`) instantiated as Hydra does when it builds
    the DataModule from the data config, so a tool outside training gets the same steps."""
    import hydra.utils

    return list(hydra.utils.instantiate(list(steps or []), _convert_="all"))
