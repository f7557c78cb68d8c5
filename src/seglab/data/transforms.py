"""Albumentations pipelines assembled from config: the augmentations, then normalise and tensorise."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import albumentations as A
from albumentations.pytorch import ToTensorV2

from seglab.errors import ConfigError

Steps = Mapping[str, Any] | Sequence[Any] | None


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


def build_transform(
    steps: Steps,
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
            *pipeline_steps(steps),
            A.Normalize(mean=tuple(mean), std=tuple(std), max_pixel_value=max_pixel_value),
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
