"""Finding and reading the images predict.py segments, whatever their mode or bit depth."""

from __future__ import annotations

import glob
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from seglab.errors import BadSampleError, SeglabError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
GLOB_CHARS = "*?["


def find_inputs(spec: str) -> list[tuple[Path, Path]]:
    """(image, path relative to the input's base) for a file, a folder (recursive) or a glob.

    The relative path mirrors subfolders into the output folder.
    """
    if any(c in spec for c in GLOB_CHARS):
        prefix = spec[: min(spec.index(c) for c in GLOB_CHARS if c in spec)]
        base = Path(prefix) if prefix.endswith(("/", "\\")) else Path(prefix).parent
        found = sorted(Path(p) for p in glob.glob(spec, recursive=True))
        pairs = [(p, p.relative_to(base)) for p in found if _is_image(p)]
    else:
        source = Path(spec)
        if source.is_file():
            pairs = [(source, Path(source.name))]
        elif source.is_dir():
            pairs = [(p, p.relative_to(source)) for p in sorted(source.rglob("*")) if _is_image(p)]
        else:
            raise SeglabError(f"input={spec!r}: no such file or folder (nor a glob pattern)")
    if not pairs:
        raise SeglabError(f"input={spec!r} holds no image ({', '.join(IMAGE_SUFFIXES)})")
    _check_unique_stems(pairs)
    return pairs


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def _check_unique_stems(pairs: Sequence[tuple[Path, Path]]) -> None:
    """`a.png` and `a.jpg` side by side would both write `a_mask.png`."""
    seen: dict[Path, Path] = {}
    for path, rel in pairs:
        key = rel.with_suffix("")
        if key in seen:
            raise SeglabError(
                f"{seen[key]} and {path} would both be written as {key}_mask.png; "
                "rename one or predict them separately"
            )
        seen[key] = path


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """8-bit as is; deeper integers and floats stretched by the image's own maximum."""
    if array.dtype == np.uint8:
        return array
    is_float = np.issubdtype(array.dtype, np.floating)
    array = np.nan_to_num(array.astype(np.float64))
    top = array.max() if array.size else 0.0
    if is_float and array.min() >= 0 and top <= 1.0:
        top = 1.0  # float images in [0, 1]
    return (255 * np.clip(array, 0, None) / max(top, 1e-12)).round().clip(0, 255).astype(np.uint8)


def _channels(array: np.ndarray, channels: int, path: Path) -> np.ndarray:
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3:
        raise BadSampleError(f"{path}: an image of shape {array.shape} is not H×W[×C]")
    have = array.shape[-1]
    if channels == 3:
        if have == 1:
            return np.repeat(array, 3, axis=-1)
        if have >= 3:
            return array[..., :3]  # RGBA and multi-band: the colour bands
    if channels == 1:
        if have == 1:
            return array
        if have >= 3:
            weights = np.array([0.299, 0.587, 0.114])
            return (array[..., :3].astype(np.float64) @ weights)[..., None].astype(array.dtype)
    raise BadSampleError(f"{path}: {have} channels; the model takes {channels}")


def read_image(path: Path, channels: int = 3) -> np.ndarray:
    """H×W×channels uint8 from RGB, RGBA, grayscale, palette, 16-bit and float images.

    JPEG orientation (EXIF) is applied, so outputs match the image as it is displayed.
    """
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            array = tifffile.imread(path)
            if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] > 4:
                array = np.moveaxis(array, 0, -1)  # planar C×H×W TIFFs
        else:
            with Image.open(path) as opened:
                image = ImageOps.exif_transpose(opened)
                if image.mode in ("P", "PA", "LA", "CMYK", "YCbCr", "HSV", "LAB", "1"):
                    image = image.convert("RGBA" if "A" in image.mode else "RGB")
                array = np.asarray(image)
    except (OSError, ValueError) as error:
        raise BadSampleError(f"{path}: not a readable image ({error})") from error
    return np.ascontiguousarray(_channels(_to_uint8(array), channels, path))
