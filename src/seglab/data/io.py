"""Reading the file kinds the datasets ship, each failure turned into a BadSampleError naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from seglab.errors import BadSampleError


def read_rgb(path: Path) -> np.ndarray:
    """An image as uint8 [H,W,3]; a truncated or corrupt file raises BadSampleError."""
    try:
        with Image.open(path) as im:
            return np.array(im.convert("RGB"))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise BadSampleError(f"{path}: cannot read image ({e})") from e


def read_label_png(path: Path, modes: tuple[str, ...] = ("P", "L")) -> np.ndarray:
    """A label PNG whose pixel values are ids, read as stored (never converted).

    Palette PNGs are read by index; `.convert("L")` would turn palette colours into grey
    levels and destroy the labels, so colour images are refused rather than converted.
    """
    try:
        with Image.open(path) as im:
            if im.mode not in modes:
                raise BadSampleError(
                    f"{path}: mask has mode {im.mode!r}; expected {' or '.join(map(repr, modes))} "
                    "PNG whose pixel values are class ids"
                )
            return np.array(im)
    except (OSError, SyntaxError, ValueError) as e:
        raise BadSampleError(f"{path}: cannot read mask ({e})") from e


def read_mat(path: Path, key: str) -> np.ndarray:
    """Array `key` of a MATLAB .mat file (v5, as scipy.io writes and the datasets ship)."""
    from scipy.io import loadmat

    try:
        data = loadmat(str(path))
    except (OSError, ValueError, TypeError, NotImplementedError) as e:
        raise BadSampleError(f"{path}: cannot read .mat file ({e})") from e
    if key not in data:
        found = sorted(k for k in data if not k.startswith("__"))
        raise BadSampleError(f"{path}: no key {key!r} in the .mat file (found {found})")
    return np.asarray(data[key])
