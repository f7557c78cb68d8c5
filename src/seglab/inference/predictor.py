"""One inference path for validation, eval.py and predict.py: whole image, sliding window, TTA.

The `infer` config (conf/infer/*.yaml) decides how a batch of images becomes logits; every
caller goes through `infer_logits`, so a score in eval.py is computed exactly as in validation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor

from seglab.errors import ConfigError
from seglab.inference.sliding import BLENDS, as_pair, slide_inference
from seglab.resolvers import training_crop

MODES = ("whole", "slide", "auto")
FLIP_DIMS = {"horizontal": (-1,), "vertical": (-2,)}
DEFAULT_WINDOW = 512  # when neither infer.window nor the data config names a training crop


@dataclass(frozen=True)
class InferSettings:
    """The `infer` config, checked. window/stride are (height, width) once resolved."""

    mode: str = "whole"
    window: tuple[int, int] = (DEFAULT_WINDOW, DEFAULT_WINDOW)
    stride: tuple[int, int] = (341, 341)
    blend: str = "gaussian"
    window_batch: int = 4
    auto_factor: float = 2.0
    tta: bool = False
    flips: tuple[str, ...] = ("horizontal",)

    @classmethod
    def from_config(
        cls, cfg: Mapping[str, Any] | None, data: Mapping[str, Any] | None = None
    ) -> InferSettings:
        """Settings from an `infer` dict; a null window is the data config's training crop."""
        cfg = dict(cfg or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ConfigError(f"unknown infer keys {unknown}; expected some of {sorted(known)}")
        mode = cfg.get("mode", "whole")
        if mode not in MODES:
            raise ConfigError(f"infer.mode={mode!r}; expected one of {', '.join(MODES)}")
        blend = cfg.get("blend", "gaussian")
        if blend not in BLENDS:
            raise ConfigError(f"infer.blend={blend!r}; expected one of {', '.join(BLENDS)}")
        window = as_pair(cfg.get("window") or training_crop(data) or DEFAULT_WINDOW, "window")
        stride = as_pair(cfg.get("stride") or [math.ceil(w * 2 / 3) for w in window], "stride")
        if stride[0] > window[0] or stride[1] > window[1]:
            raise ConfigError(
                f"infer.stride={list(stride)} exceeds infer.window={list(window)}: "
                "windows would leave gaps"
            )
        flips = tuple(cfg.get("flips") or ())
        bad = [f for f in flips if f not in FLIP_DIMS]
        if bad:
            raise ConfigError(f"infer.flips={list(flips)}; expected some of {sorted(FLIP_DIMS)}")
        window_batch = int(cfg.get("window_batch", 4))
        if window_batch < 1:
            raise ConfigError(f"infer.window_batch={window_batch}; expected ≥ 1")
        return cls(
            mode=mode,
            window=window,
            stride=stride,
            blend=blend,
            window_batch=window_batch,
            auto_factor=float(cfg.get("auto_factor", 2.0)),
            tta=bool(cfg.get("tta", False)),
            flips=flips,
        )

    def slides(self, height: int, width: int) -> bool:
        """Whether an image of this size goes through the sliding window."""
        if self.mode == "auto":
            return height > self.auto_factor * self.window[0] or (
                width > self.auto_factor * self.window[1]
            )
        return self.mode == "slide"


def with_tta(forward: Callable[[Tensor], Tensor], flips: tuple[str, ...]) -> Callable:
    """`forward` averaged (in logit space) over the image and its flips, each flipped back."""

    def averaged(images: Tensor) -> Tensor:
        total = forward(images).float()
        for flip in flips:
            dims = FLIP_DIMS[flip]
            total += forward(images.flip(dims)).float().flip(dims)
        return total / (1 + len(flips))

    return averaged


@torch.no_grad()
def infer_logits(
    forward: Callable[[Tensor], Tensor],
    images: Tensor,
    num_classes: int,
    settings: InferSettings,
) -> Tensor:
    """B×K×H×W logits of a B×C×H×W batch. Whole mode without TTA is `forward(images)` itself."""
    if settings.tta and settings.flips:
        forward = with_tta(forward, settings.flips)
    if not settings.slides(*images.shape[-2:]):
        return forward(images)
    outputs = [
        slide_inference(
            forward,
            image,
            num_classes,
            settings.window,
            settings.stride,
            settings.blend,
            settings.window_batch,
        )
        for image in images
    ]
    # One image (predict, whole tiles): a view, not a second copy of the logits.
    return outputs[0][None] if len(outputs) == 1 else torch.stack(outputs)
