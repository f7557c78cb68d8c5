"""Colour masks and overlays in a dataset's palette; shared by training artifacts and predict."""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

IGNORE_COLOUR = (255, 255, 255)


def voc_palette(n: int = 256) -> list[tuple[int, int, int]]:
    """The VOC colormap: class id bits spread over the high bits of R, G and B.

    This is the rule the devkit's `labelcolormap.m` uses, so masks written with it look
    exactly like the official ones in any image viewer.
    """
    colours = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        colours.append((r, g, b))
    return colours


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


def instance_colours(n: int) -> np.ndarray:
    """n well-separated bright colours (golden-ratio hue steps), uint8 [n, 3]."""
    hues = (np.arange(n) * 0.618034) % 1.0
    return np.array(
        [[round(255 * c) for c in colorsys.hsv_to_rgb(h, 0.85, 1.0)] for h in hues], dtype=np.uint8
    ).reshape(n, 3)


def draw_instances(
    image: np.ndarray,
    masks: np.ndarray,
    captions: Sequence[str],
    alpha: float = 0.5,
) -> np.ndarray:
    """Each instance (bool mask [N,H,W]) blended in its own colour, outlined by its box and
    captioned (class, and score for predictions) at the box's top-left corner."""
    out = image.astype(np.float32).copy()
    colours = instance_colours(len(masks))
    for mask, colour in zip(masks, colours, strict=True):
        out[mask] = (1 - alpha) * out[mask] + alpha * colour
    canvas = Image.fromarray(out.round().clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for mask, colour, caption in zip(masks, colours, captions, strict=True):
        ys, xs = np.nonzero(mask)
        if not len(xs):
            continue
        box = (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))
        draw.rectangle(box, outline=tuple(int(c) for c in colour), width=1)
        left, top = box[0], max(0, box[1] - 11)
        text_box = draw.textbbox((left, top), caption)
        draw.rectangle(text_box, fill=(0, 0, 0))
        draw.text((left, top), caption, fill=tuple(int(c) for c in colour))
    return np.asarray(canvas)
