"""Colour masks and overlays in a dataset's palette; shared by training artifacts and predict."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

IGNORE_COLOUR = (255, 255, 255)


def palette_array(palette: Sequence[Sequence[int]], ignore_index: int | None = 255) -> np.ndarray:
    """A 256×3 uint8 lookup table: class id → colour; the ignore index is white."""
    table = np.zeros((256, 3), dtype=np.uint8)
    colours = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)[:256]
    table[: len(colours)] = colours
    if ignore_index is not None and 0 <= ignore_index < 256 and ignore_index >= len(colours):
        table[ignore_index] = IGNORE_COLOUR
    return table


def colorize(
    mask: np.ndarray, palette: Sequence[Sequence[int]], ignore_index: int | None = 255
) -> np.ndarray:
    """H×W class ids → H×W×3 uint8 colours."""
    return palette_array(palette, ignore_index)[np.clip(mask, 0, 255).astype(np.uint8)]


def overlay(image: np.ndarray, colour_mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend a colour mask onto an RGB uint8 image."""
    blended = (1 - alpha) * image.astype(np.float32) + alpha * colour_mask.astype(np.float32)
    return blended.round().clip(0, 255).astype(np.uint8)


def denormalize(image: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """C×H×W normalised float image → H×W×3 uint8 for display."""
    chw = image * np.asarray(std, dtype=np.float32)[:, None, None]
    chw = chw + np.asarray(mean, dtype=np.float32)[:, None, None]
    hwc = np.moveaxis(chw[:3], 0, -1)
    if hwc.shape[-1] == 1:
        hwc = np.repeat(hwc, 3, axis=-1)
    return (hwc * 255).round().clip(0, 255).astype(np.uint8)
