"""The offline default dataset: textured shapes written in the exact PASCAL VOC layout.

Generated on first use so `python train.py` works with no download, and written as VOC
(JPEG images, palette-PNG class and instance masks, split lists) so the very reader that
serves the real data serves this one: the synthetic set exercises the production code path.

The task is meant to be learnable in minutes on a CPU but not by a threshold: each class is a
shape, colours come from one shared set (a class only has a hue *bias*), objects and
backgrounds are textured, and objects occlude one another.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from seglab.data.cache import read_manifest, write_manifest
from seglab.errors import ConfigError, SeglabError
from seglab.visualize import voc_palette

# What the generator draws, by class id (0 = background). conf/data/synthetic.yaml names them
# the same (class_names) and colours them (palette, the VOC colormap's first entries).
SYNTHETIC_CLASSES: tuple[str, ...] = ("background", "disc", "square", "triangle", "ring", "star")
# Bump whenever the drawing changes, so existing copies are regenerated.
GENERATOR_VERSION = 5
MANIFEST = "seglab_synthetic.json"
ID_FORMAT = "synth_{:06d}"

_VOID = 255
# One colour set shared by every class, so colour alone cannot name the class.
_COLOURS = np.array(
    [
        (220, 40, 40),  # red
        (245, 140, 30),  # orange
        (235, 215, 40),  # yellow
        (60, 190, 60),  # green
        (40, 190, 200),  # cyan
        (50, 80, 220),  # blue
        (150, 60, 210),  # purple
        (225, 70, 170),  # magenta
        (240, 240, 240),  # white
        (35, 35, 35),  # black
    ],
    dtype=np.float32,
)
# Each object class leans towards two colours; the rest of the time any colour is drawn.
_PREFERRED = {1: (0, 1), 2: (5, 4), 3: (3, 2), 4: (7, 6), 5: (8, 1)}
_P_PREFERRED = 0.85
_SIZE_RANGE = (0.2, 0.45)  # object extent as a fraction of the image side
_MIN_VISIBLE = 0.5  # an occluded object keeps at least this fraction of its area


def ensure_synthetic_voc(
    root: str | Path,
    num_train: int = 1000,
    num_val: int = 100,
    image_size: int = 64,
    seed: int = 0,
) -> Path:
    """Generate the dataset into `root/VOCdevkit/VOC2012/` unless an identical one is there.

    Generation happens in a temporary sibling that is renamed into place at the end, under a
    file lock, so an interrupted run never leaves half a dataset and concurrent callers (one
    per rank or per worker) generate it once. Returns `root`.
    """
    if num_train < 1 or num_val < 1:
        raise ConfigError(
            f"synthetic data needs num_train, num_val >= 1, got {num_train}, {num_val}"
        )
    if image_size < 32:
        raise ConfigError(f"synthetic data needs image_size >= 32, got {image_size}")
    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    params = _manifest(num_train, num_val, image_size, seed)
    target = root / "VOCdevkit"
    if read_manifest(target, params, MANIFEST) is not None:
        return root
    with _file_lock(root / ".seglab_synthetic.lock") as locked:
        if read_manifest(target, params, MANIFEST) is not None:  # made by another process meanwhile
            return root
        if target.exists() and not (target / MANIFEST).is_file():
            raise SeglabError(
                f"{target} exists but is not a seglab synthetic dataset (no {MANIFEST}); "
                "refusing to overwrite it. Point data.root at another folder."
            )
        if locked:
            _remove_leftovers(root)
        reason = "first use" if not target.exists() else "parameters changed"
        print(f"Generating the synthetic dataset (VOC layout) into {target} ({reason})", flush=True)
        tmp = Path(tempfile.mkdtemp(prefix=".VOCdevkit.tmp-", dir=root))
        try:
            write_voc_tree(tmp / "VOC2012", num_train, num_val, image_size, seed)
            write_manifest(tmp, params, MANIFEST, **params)  # params readable at the top too
            _swap_in(tmp, target, params)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return root


def write_voc_tree(base: Path, num_train: int, num_val: int, image_size: int, seed: int) -> None:
    """Write every sample and the split lists into a VOC2012-style folder `base`."""
    dirs = {
        name: base / name
        for name in ("JPEGImages", "SegmentationClass", "SegmentationObject", "ImageSets")
    }
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    flat_palette = [v for rgb in voc_palette(256) for v in rgb]
    ids = [ID_FORMAT.format(i + 1) for i in range(num_train + num_val)]
    for index, sample_id in enumerate(ids):
        image, cls, inst = render_sample(index, image_size, seed)
        Image.fromarray(image).save(dirs["JPEGImages"] / f"{sample_id}.jpg", quality=95)
        for arr, sub in ((cls, "SegmentationClass"), (inst, "SegmentationObject")):
            png = Image.fromarray(arr)
            png.putpalette(flat_palette)  # an "L" image becomes "P", as VOC's masks are
            png.save(dirs[sub] / f"{sample_id}.png")
    splits = dirs["ImageSets"] / "Segmentation"
    splits.mkdir()
    for name, part in (("train", ids[:num_train]), ("val", ids[num_train:]), ("trainval", ids)):
        (splits / f"{name}.txt").write_text("".join(f"{i}\n" for i in part))


def render_sample(index: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One sample: RGB uint8 [S,S,3], class mask and instance mask uint8 [S,S] with void borders.

    Seeded per (seed, index), so any sample can be regenerated alone and the output does
    not depend on how many samples precede it.
    """
    rng = np.random.default_rng([seed, index])
    image = _background(rng, size)
    inst = np.zeros((size, size), dtype=np.uint8)
    classes: list[int] = []
    areas: list[int] = []
    # The first object's class cycles with the index: every class is in any 5 consecutive ids.
    n_objects = int(rng.integers(1, 5))
    for k in range(n_objects):
        cls = 1 + index % 5 if k == 0 else int(rng.integers(1, 6))
        for _ in range(10):
            mask = _shape_mask(rng, cls, size)
            area = int(mask.sum())
            if area >= 20 and _keeps_visible(inst, mask, areas):
                break
        else:
            continue
        image[mask] = _texture(rng, cls, size)[mask]
        classes.append(cls)
        areas.append(area)
        inst[mask] = len(classes)
    image = np.clip(image + rng.normal(0.0, 3.0, image.shape), 0, 255).astype(np.uint8)
    return image, *_masks_with_void(inst, classes)


def _keeps_visible(inst: np.ndarray, mask: np.ndarray, areas: list[int]) -> bool:
    """Whether every earlier object keeps enough of itself visible once `mask` is drawn on top."""
    if not areas:
        return True
    hidden = np.bincount(inst[mask], minlength=len(areas) + 1)[1:]
    visible = np.bincount(inst.ravel(), minlength=len(areas) + 1)[1:] - hidden
    return bool(np.all(visible >= _MIN_VISIBLE * np.asarray(areas)))


def _masks_with_void(inst: np.ndarray, classes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Class and instance masks with a VOC-style 255 band where instance labels change."""
    pad = np.pad(inst, 1, mode="edge")
    h, w = inst.shape
    shifted = [
        pad[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy in (-1, 0, 1) for dx in (-1, 0, 1)
    ]
    stack = np.stack(shifted)
    void = stack.max(axis=0) != stack.min(axis=0)
    # Renumber so instance ids stay 1..K even if an instance vanished under the void band.
    present = [i for i in range(1, len(classes) + 1) if np.any((inst == i) & ~void)]
    inst_lut = np.zeros(256, dtype=np.uint8)
    cls_lut = np.zeros(256, dtype=np.uint8)
    for new_id, old_id in enumerate(present, start=1):
        inst_lut[old_id] = new_id
        cls_lut[old_id] = classes[old_id - 1]
    cls_mask, inst_mask = cls_lut[inst], inst_lut[inst]
    cls_mask[void] = _VOID
    inst_mask[void] = _VOID
    return cls_mask, inst_mask


def _shape_mask(rng: np.random.Generator, cls: int, size: int) -> np.ndarray:
    """A boolean mask of one randomly sized, rotated and placed shape of class `cls`."""
    radius = rng.uniform(*_SIZE_RANGE) * size / 2
    cx, cy = rng.uniform(0.1 * size, 0.9 * size, 2)
    theta = rng.uniform(0, 2 * np.pi)
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    name = SYNTHETIC_CLASSES[cls]
    if name == "disc":
        draw.polygon(_ellipse(cx, cy, radius, rng.uniform(0.85, 1.0), theta), fill=1)
    elif name == "square":
        angles = theta + np.pi / 4 + np.arange(4) * np.pi / 2
        draw.polygon(_points(cx, cy, np.full(4, radius), angles), fill=1)
    elif name == "triangle":
        angles = theta + np.arange(3) * 2 * np.pi / 3 + rng.uniform(-0.15, 0.15, 3)
        draw.polygon(_points(cx, cy, np.full(3, radius), angles), fill=1)
    elif name == "ring":
        draw.polygon(_ellipse(cx, cy, radius, 1.0, theta), fill=1)
        draw.polygon(_ellipse(cx, cy, radius * rng.uniform(0.45, 0.62), 1.0, theta), fill=0)
    elif name == "star":
        angles = theta + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, radius, radius * rng.uniform(0.4, 0.5))
        draw.polygon(_points(cx, cy, radii, angles), fill=1)
    else:  # pragma: no cover - guarded by SYNTHETIC_CLASSES
        raise ValueError(f"unknown synthetic class {name!r}")
    return np.asarray(canvas, dtype=bool)


def _points(
    cx: float, cy: float, radii: np.ndarray, angles: np.ndarray
) -> list[tuple[float, float]]:
    xs, ys = cx + radii * np.cos(angles), cy + radii * np.sin(angles)
    return list(zip(xs.tolist(), ys.tolist(), strict=True))


def _ellipse(
    cx: float, cy: float, r: float, aspect: float, theta: float
) -> list[tuple[float, float]]:
    t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    x, y = r * np.cos(t), r * aspect * np.sin(t)
    c, s = np.cos(theta), np.sin(theta)
    return list(zip((cx + c * x - s * y).tolist(), (cy + s * x + c * y).tolist(), strict=True))


@lru_cache(maxsize=4)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    return yy, xx


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Value noise in [0,1]: a coarse random grid upsampled bicubically."""
    coarse = Image.fromarray(rng.random((cells, cells), dtype=np.float32))
    field = np.asarray(coarse.resize((size, size), Image.Resampling.BICUBIC))
    return np.clip(field, 0.0, 1.0)


def _ramp(rng: np.random.Generator, size: int, period: float) -> np.ndarray:
    """Distance along a random direction, divided by `period`."""
    yy, xx = _grid(size)
    a = rng.uniform(0, np.pi)
    return (xx * np.cos(a) + yy * np.sin(a)) / period


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A muted, low-contrast textured background (float [S,S,3]) so objects stand out by shape."""
    base = rng.uniform(70, 180) + rng.normal(0, 18, 3)
    other = base + rng.normal(0, 22, 3)
    kind = rng.integers(3)
    if kind == 0:
        t = _smooth_noise(rng, size, int(rng.integers(3, 9)))
    elif kind == 1:
        t = np.clip(_ramp(rng, size, size * 1.5) - rng.uniform(-0.2, 0.5), 0, 1)
    else:
        t = 0.5 + 0.5 * np.sin(2 * np.pi * _ramp(rng, size, rng.uniform(10, 28)))
    return base * (1 - t[..., None]) + other * t[..., None]


def _object_colour(rng: np.random.Generator, cls: int) -> np.ndarray:
    if rng.random() < _P_PREFERRED:
        idx = _PREFERRED[cls][int(rng.integers(2))]
    else:
        idx = int(rng.integers(len(_COLOURS)))
    return np.clip(_COLOURS[idx] + rng.normal(0, 12, 3), 0, 255)


def _texture(rng: np.random.Generator, cls: int, size: int) -> np.ndarray:
    """A full-size float [S,S,3] fill (flat, stripes, noise or gradient) in a drawn colour."""
    colour = _object_colour(rng, cls)
    kind = rng.integers(4)
    if kind == 0:  # flat
        return np.broadcast_to(colour, (size, size, 3)).copy()
    if kind == 1:  # stripes in the colour and a darker or lighter shade of it
        shade = colour * 0.55 if rng.random() < 0.5 else colour + (255 - colour) * 0.5
        on = (np.floor(_ramp(rng, size, rng.uniform(2.5, 5.0))) % 2)[..., None]
        return colour * (1 - on) + shade * on
    if kind == 2:  # per-pixel noise
        return colour + rng.normal(0, 22, (size, size, 1)).astype(np.float32)
    t = np.clip(_ramp(rng, size, size * 0.4) % 2.0, 0, 2)  # gradient
    t = np.abs(t - 1.0)[..., None]
    return colour * (0.6 + 0.6 * t)


def _manifest(num_train: int, num_val: int, image_size: int, seed: int) -> dict[str, Any]:
    return {
        "generator": "seglab.data.synthetic",
        "version": GENERATOR_VERSION,
        "num_train": num_train,
        "num_val": num_val,
        "image_size": image_size,
        "seed": seed,
        "classes": list(SYNTHETIC_CLASSES),
    }


def _swap_in(tmp: Path, target: Path, params: dict[str, Any]) -> None:
    """Rename the finished tree into place, moving an outdated one aside first."""
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=".VOCdevkit.old-", dir=target.parent))
        os.replace(target, old / "VOCdevkit")
    try:
        os.rename(tmp, target)
    except OSError:
        # Without a working lock another process can win the rename; its copy is as good.
        if read_manifest(target, params, MANIFEST) is None:
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _remove_leftovers(root: Path) -> None:
    """Delete temporary trees of interrupted runs (only safe while holding the lock)."""
    for p in root.glob(".VOCdevkit.*-*"):
        shutil.rmtree(p, ignore_errors=True)


@contextmanager
def _file_lock(path: Path) -> Iterator[bool]:
    """An exclusive advisory lock; yields False where `fcntl` is missing (Windows)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield False
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
