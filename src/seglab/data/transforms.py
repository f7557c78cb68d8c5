"""Albumentations pipelines assembled from config: the augmentations, then normalise and tensorise."""

from __future__ import annotations

from collections.abc import Sequence

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
