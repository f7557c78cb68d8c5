"""An image as validation shows it to the model, and the way back to the image's own size.

predict.py runs each image through the checkpoint's `data.val_transforms` (a resize, padding;
named steps, or a list in older checkpoints) and normalisation, exactly as the validation loader
does, so a model predicts on what it was scored on. For masks at the input's own size it must
then find where the image lies in that canvas. Two coordinate maps go through the same steps as
masks: each pixel holds the centre of its source row (column), `i + 0.5`. In that pass every
border a step makes is filled with a constant (0; the image itself goes through the steps as
configured, reflected padding and all), and nearest-neighbour resizing keeps the centres, so the
pixels whose maps both still end in .5 are the image. They must form one box holding a scaled
copy of the whole image; anything else (a crop that cuts it, a flip, a rotation) cannot be
mapped back and is refused.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import albumentations as A
import cv2
import numpy as np
import torch.nn.functional as F
from torch import Tensor

from seglab.data.transforms import build_transform, instantiate_steps
from seglab.errors import ConfigError


@dataclass(frozen=True)
class Placement:
    """Where an image of size `source` (H, W) lies in the canvas validation made of it: rows
    `top`…`top + height`, columns `left`…`left + width`."""

    top: int
    left: int
    height: int
    width: int
    source: tuple[int, int]

    def to_source(self, logits: Tensor) -> Tensor:
        """K×h×w canvas logits cropped to the image and resized (bilinear) to its own size."""
        crop = logits[..., self.top : self.top + self.height, self.left : self.left + self.width]
        if (self.height, self.width) == self.source:
            return crop
        return F.interpolate(crop[None], size=self.source, mode="bilinear", align_corners=False)[0]


class ValidationView:
    """`data.val_transforms` + normalisation + tensor, with the image's placement in the result."""

    def __init__(
        self, steps: Sequence[A.BasicTransform], mean: Sequence[float], std: Sequence[float]
    ) -> None:
        self.steps = list(steps)
        # Normalised as uint8 images (what the reader returns), whatever the training reader gave.
        self.transform = build_transform(self.steps, mean, std)
        # The same geometry with constant borders, for the coordinate maps (see the docstring).
        self.locator = A.Compose([_constant_borders(step) for step in self.steps])

    @classmethod
    def from_data_config(cls, data: Mapping[str, Any]) -> ValidationView:
        """The validation pipeline of a data config, e.g. a checkpoint's `hparams["data"]`."""
        return cls(instantiate_steps(data.get("val_transforms")), data["mean"], data["std"])

    def __call__(self, image: np.ndarray) -> tuple[Tensor, Placement]:
        """C×h×w float canvas (normalised) for H×W×C uint8 `image`, and where the image is."""
        height, width = image.shape[:2]
        if not self.steps:  # normalisation alone keeps every pixel where it is
            whole = Placement(0, 0, height, width, (height, width))
            return self.transform(image=image)["image"], whole
        rows = np.repeat(np.arange(height, dtype=np.float32)[:, None] + 0.5, width, axis=1)
        cols = np.repeat(np.arange(width, dtype=np.float32)[None, :] + 0.5, height, axis=0)
        seen_rows, seen_cols = self.locator(image=image, masks=[rows, cols])["masks"]
        placement = self._locate(np.asarray(seen_rows), np.asarray(seen_cols), (height, width))
        return self.transform(image=image)["image"], placement

    def _locate(
        self, seen_rows: np.ndarray, seen_cols: np.ndarray, source: tuple[int, int]
    ) -> Placement:
        inside = (np.mod(seen_rows, 1) == 0.5) & (np.mod(seen_cols, 1) == 0.5)
        ys, xs = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
        if not ys.size:
            raise self._unmappable(source, "no pixel of the image is left in the canvas")
        top, left = int(ys[0]), int(xs[0])
        height, width = int(ys[-1]) + 1 - top, int(xs[-1]) + 1 - left
        box = np.s_[top : top + height, left : left + width]
        if not inside[box].all():
            raise self._unmappable(source, "the image is not one rectangle of the canvas")
        # Canvas row i of the box shows source row centre (i + 0.5)·H/h when the box is the whole
        # image scaled; nearest-neighbour sampling strays by up to half a source step plus one.
        for seen, n, size, axis in (
            (seen_rows[box], height, source[0], 1),
            (seen_cols[box], width, source[1], 0),
        ):
            expected = np.expand_dims((np.arange(n) + 0.5) * size / n, axis)
            if np.abs(seen - expected).max() > 1.0 + 0.5 * max(size / n, 1.0):
                raise self._unmappable(source, "the canvas shows part of it, moved or flipped")
        return Placement(top, left, height, width, source)

    def _unmappable(self, source: tuple[int, int], why: str) -> ConfigError:
        names = ", ".join(type(step).__name__ for step in self.steps)
        return ConfigError(
            f"data.val_transforms ({names}) cannot be undone on a {source[1]}x{source[0]} image: "
            f"{why}. predict.py maps predictions back to the input through resizing and padding "
            "only, so the checkpoint's val_transforms must keep the whole image, unflipped"
        )


def _constant_borders(step: A.BasicTransform) -> A.BasicTransform:
    """`step`, or a copy of it that fills the borders it makes with 0 (the same geometry)."""
    if not hasattr(step, "border_mode"):
        return step
    step = copy.deepcopy(step)
    step.border_mode = cv2.BORDER_CONSTANT
    if hasattr(step, "fill_mask"):
        step.fill_mask = 0
    return step
