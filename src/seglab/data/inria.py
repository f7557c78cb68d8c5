"""Inria Aerial Image Labeling: 5000×5000 GeoTIFF tiles, buildings vs. background.

Ground truth is 0/255; 255 is mapped to 1 *before* anything looks at the ignore index (else
every building pixel would be ignored). Tiles 1..`val_tiles` of each city are validation,
the rest training (city and number parsed from the basename, `<city><n>.tif`). Training draws
`crops_per_tile` random crops per tile and epoch; validation is a fixed grid of crops
covering every tile completely (the last row/column aligned to the tile's edge), or whole
tiles with `val_crop_size` ≥ 5000.

Uncompressed tiles are memory-mapped, so a crop reads only its own pixels; compressed ones are
decoded once into an `.npy` cache (validated by a manifest) and mapped from there.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seglab.data.base import (
    BadSampleWarning,
    SegmentationReader,
    apply_lut,
    label_lut,
    not_found,
    require_dir,
)
from seglab.data.cache import announce, cache_dir_for, fingerprint, read_manifest, write_manifest
from seglab.data.windows import window_starts
from seglab.errors import BadSampleError, ConfigError

CITIES = ("austin", "chicago", "kitsap", "tyrol-w", "vienna")
GT_LUT = label_lut({0: 0, 255: 1}, invalid=-1)
CACHE_VERSION = 1
URL = "https://project.inria.fr/aerialimagelabeling/"
_LAYOUT = """\
  <root>/                      (or its parent holding AerialImageDataset/)
    train/images/<city><n>.tif   (RGB GeoTIFF, n = 1..36, cities austin chicago kitsap tyrol-w vienna)
    train/gt/<city><n>.tif       (single band: 255 = building, 0 = not)"""
_SOURCE = (
    f"Get NEW2-AerialImageDataset.zip from {URL} (7z split archive: `7z x aerialimagelabeling.7z.001`) "
    "and unpack it; data.root may point at AerialImageDataset or its parent."
)
_TILE = re.compile(r"^(?P<city>[a-z-]+?)(?P<n>\d+)$")


def parse_tile(path: Path) -> tuple[str, int]:
    """`vienna12.tif` → ("vienna", 12)."""
    match = _TILE.match(path.stem)
    if not match:
        raise BadSampleError(f"{path}: file name is not <city><n>.tif")
    return match.group("city"), int(match.group("n"))


class InriaAerial(SegmentationReader):
    """Crops of Inria tiles; items add `group` = the city's index in `cities` (IoU per city)."""

    dataset_name = "Inria Aerial"

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transform: Callable[..., dict[str, Any]] | None = None,
        num_classes: int = 2,
        ignore_index: int = 255,
        skip_bad: bool = False,
        cache_dir: str | Path = ".cache",
        crop_size: int = 512,
        crops_per_tile: int = 16,
        val_tiles: int = 5,
        cities: Sequence[str] = CITIES,
        val_crop_size: int | None = None,
    ) -> None:
        super().__init__(split, transform, num_classes, ignore_index, skip_bad)
        root = require_dir(self.dataset_name, root, _LAYOUT, _SOURCE)
        self.root = root / "AerialImageDataset" if (root / "AerialImageDataset").is_dir() else root
        image_dir, gt_dir = self.root / "train" / "images", self.root / "train" / "gt"
        for folder in (image_dir, gt_dir):
            if not folder.is_dir():
                raise not_found(self.dataset_name, "missing folder", folder, _LAYOUT, _SOURCE)
        if split not in ("train", "val"):
            raise ConfigError(f"Inria split must be 'train' or 'val', got {split!r}")
        self.cities = list(cities)
        # Validation crops: crop_size by default; >= the tile size gives whole tiles (for a
        # sliding-window val, infer=slide).
        self.crop = int(crop_size if split == "train" or not val_crop_size else val_crop_size)
        self.crops_per_tile = int(crops_per_tile)
        self.cache = cache_dir_for(cache_dir, "inria", self.root)
        self.tiles: list[tuple[Path, Path, int]] = []  # image, gt, city index
        for image in sorted(image_dir.glob("*.tif")):
            city, n = parse_tile(image)
            if city not in self.cities:
                raise ConfigError(f"{image}: city {city!r} is not in data.cities {self.cities}")
            if (n <= val_tiles) != (split == "val"):
                continue
            gt = gt_dir / image.name
            if not gt.is_file():
                raise not_found(
                    self.dataset_name, "tile without ground truth", gt, _LAYOUT, _SOURCE
                )
            self.tiles.append((image, gt, self.cities.index(city)))
        if not self.tiles:
            raise not_found(
                self.dataset_name, f"no {split} tiles (<city><n>.tif)", image_dir, _LAYOUT, _SOURCE
            )
        self._maps: dict[Path, np.ndarray] = {}
        # (tile, y, x); y = x = -1 marks a random training crop.
        self.crops: list[tuple[int, int, int]] = []
        for t, (image, _, _) in enumerate(self.tiles):
            if split == "train":
                self.crops += [(t, -1, -1)] * self.crops_per_tile
            else:
                try:
                    h, w = self._open(image).shape[:2]
                except BadSampleError as error:
                    if not skip_bad:
                        raise
                    warnings.warn(f"skipping bad tile: {error}", BadSampleWarning, stacklevel=2)
                    continue
                self.crops += [
                    (t, y, x)
                    for y in window_starts(h, self.crop, self.crop)
                    for x in window_starts(w, self.crop, self.crop)
                ]

    def _open(self, path: Path) -> np.ndarray:
        """The tile as a read-only array, memory-mapped (directly, or through the cache)."""
        if path in self._maps:
            return self._maps[path]
        import tifffile

        try:
            array = tifffile.memmap(str(path), mode="r")
        except (ValueError, OSError, tifffile.TiffFileError):  # compressed or tiled: decode once
            array = self._cached(path)
        self._maps[path] = array
        return array

    def _cached(self, path: Path) -> np.ndarray:
        import tifffile

        entry = self.cache / path.parent.name / path.stem
        expected = fingerprint([path], {"version": CACHE_VERSION})
        if read_manifest(entry, expected) is None:
            announce(f"Inria: decoding {path.name} once into {entry} (compressed tile)")
            try:
                array = tifffile.imread(str(path))
            except Exception as e:  # tifffile raises many kinds for truncated files
                raise BadSampleError(
                    f"{path}: cannot read GeoTIFF ({type(e).__name__}: {e})"
                ) from e
            entry.mkdir(parents=True, exist_ok=True)
            np.save(entry / "tile.npy", array)
            write_manifest(entry, expected, shape=list(array.shape))
        return np.load(entry / "tile.npy", mmap_mode="r")

    def __len__(self) -> int:
        return len(self.crops)

    def sample_id(self, index: int) -> str:
        t, y, x = self.crops[index]
        return self.tiles[t][0].stem + ("" if y < 0 else f"_y{y}_x{x}")

    def sample_paths(self, index: int) -> dict[str, Path]:
        image, gt, _ = self.tiles[self.crops[index][0]]
        return {"image": image, "mask": gt}

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        t, y, x = self.crops[index]
        image_path, gt_path, _ = self.tiles[t]
        image, gt = self._open(image_path), self._open(gt_path)
        if gt.ndim == 3:
            gt = gt[..., 0] if gt.shape[-1] == 1 else gt
        if image.ndim != 3 or image.shape[-1] < 3:
            raise BadSampleError(f"{image_path}: expected an RGB tile, got shape {image.shape}")
        if gt.shape != image.shape[:2]:
            raise BadSampleError(
                f"{gt_path}: mask size {gt.shape[1]}x{gt.shape[0]} differs from the "
                f"image size {image.shape[1]}x{image.shape[0]}"
            )
        h, w = gt.shape
        ch, cw = min(self.crop, h), min(self.crop, w)
        if y < 0:  # global RNG: Lightning seeds it per DataLoader worker
            y, x = np.random.randint(0, h - ch + 1), np.random.randint(0, w - cw + 1)
        crop = np.ascontiguousarray(image[y : y + ch, x : x + cw, :3])
        raw = np.ascontiguousarray(gt[y : y + ch, x : x + cw])
        return crop.astype(np.uint8, copy=False), apply_lut(GT_LUT, raw, gt_path, self.dataset_name)

    def extra(self, index: int) -> dict[str, Any]:
        return {"group": self.tiles[self.crops[index][0]][2]}
