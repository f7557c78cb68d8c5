"""Sliding-window inference whose memory is bounded by the window batch, not by the image.

Windows are weighted (Gaussian or flat) and summed into one logits buffer of the image's size.
The windows form a grid (every y start × every x start) and the weight map is separable, so the
normaliser Σ weights is the outer product of two 1-D sums: O(H + W) memory instead of a second
H×W map, and no list of per-window outputs is ever held.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from seglab.data.windows import window_starts
from seglab.errors import ConfigError

BLENDS = ("gaussian", "mean")
GAUSSIAN_SIGMA = 1 / 8  # σ as a fraction of the window side (nnU-Net's choice)
MIN_WEIGHT = 1e-3  # keeps the window borders from getting zero weight where nothing overlaps

__all__ = ["BLENDS", "as_pair", "slide_inference", "window_starts", "window_weights_1d"]


def as_pair(value: int | float | tuple[int, int] | list[int], name: str) -> tuple[int, int]:
    """`infer.<name>` as (height, width): one number for both sides, or a pair."""
    pair = (value, value) if isinstance(value, (int, float)) else tuple(value)
    if len(pair) != 2 or any(int(v) < 1 for v in pair):
        raise ConfigError(f"infer.{name}={value!r}; expected a positive int or [height, width]")
    return int(pair[0]), int(pair[1])


def window_weights_1d(window: int, blend: str, device: torch.device) -> Tensor:
    """One axis of the separable weight map: a Gaussian peaking at the centre, or ones."""
    if blend == "mean":
        return torch.ones(window, device=device)
    centre = (window - 1) / 2
    sigma = max(window * GAUSSIAN_SIGMA, 1e-6)
    offsets = torch.arange(window, device=device, dtype=torch.float32) - centre
    return torch.exp(-0.5 * (offsets / sigma) ** 2).clamp_min(MIN_WEIGHT)


def _normaliser_1d(length: int, starts: list[int], weights: Tensor) -> Tensor:
    total = torch.zeros(length, device=weights.device)
    for start in starts:
        total[start : start + len(weights)] += weights
    return total


def _batches(items: list[tuple[int, int]], size: int) -> Iterator[list[tuple[int, int]]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@torch.no_grad()
def slide_inference(
    forward: Callable[[Tensor], Tensor],
    image: Tensor,
    num_classes: int,
    window: int | tuple[int, int],
    stride: int | tuple[int, int],
    blend: str = "gaussian",
    window_batch: int = 4,
) -> Tensor:
    """Logits (num_classes×H×W, float32, on `image`'s device) of a C×H×W image, window by window.

    `forward` maps B×C×h×w to B×K×h×w logits (any lower resolution is resized bilinearly). A
    window larger than the image is clipped to it, so a window covering the image is exactly
    whole-image inference and no compute goes into padding. At most `window_batch` windows are
    in flight at a time.
    """
    if image.dim() != 3:
        raise ValueError(f"slide_inference takes one C×H×W image, got shape {tuple(image.shape)}")
    if blend not in BLENDS:
        raise ConfigError(f"infer.blend={blend!r}; expected one of {', '.join(BLENDS)}")
    if window_batch < 1:
        raise ConfigError(f"infer.window_batch={window_batch}; expected ≥ 1")
    height, width = image.shape[-2:]
    win_h, win_w = as_pair(window, "window")
    stride_h, stride_w = as_pair(stride, "stride")
    win_h, win_w = min(win_h, height), min(win_w, width)
    ys, xs = window_starts(height, win_h, stride_h), window_starts(width, win_w, stride_w)
    weight_y = window_weights_1d(win_h, blend, image.device)
    weight_x = window_weights_1d(win_w, blend, image.device)
    weight = weight_y[:, None] * weight_x[None, :]

    out = torch.zeros(num_classes, height, width, device=image.device, dtype=torch.float32)
    positions = [(y, x) for y in ys for x in xs]
    for chunk in _batches(positions, window_batch):
        crops = torch.stack([image[:, y : y + win_h, x : x + win_w] for y, x in chunk])
        logits = forward(crops)
        if logits.shape[-2:] != (win_h, win_w):
            logits = F.interpolate(logits, (win_h, win_w), mode="bilinear", align_corners=False)
        if logits.shape[1] != num_classes:
            raise ValueError(f"forward returned {logits.shape[1]} channels, not {num_classes}")
        for (y, x), window_logits in zip(chunk, logits, strict=True):
            out[:, y : y + win_h, x : x + win_w] += window_logits.float() * weight
        del crops, logits
    out.div_(_normaliser_1d(height, ys, weight_y).view(1, height, 1))
    out.div_(_normaliser_1d(width, xs, weight_x).view(1, 1, width))
    return out
