"""LiTS (Liver Tumor Segmentation): NIfTI CT volumes read as 2.5-D axial slices.

`volume-N.nii` / `segmentation-N.nii` are found recursively (both "Training Batch" folders)
and paired by N. HU are clipped to [-200, 250] and scaled to [0, 1]; each slice carries its
`context` neighbours on either side as extra channels (edges repeat the end slice). Labels are
rounded to uint8 (some files store them as float). The split is by volume, never by slice:
the sorted volume numbers permuted by `numpy.random.default_rng(seed)`, the first
`val_fraction` of them val.

Reading a slice from a NIfTI decodes the whole volume, so on first use each volume is
converted once into a slice-major `.npy` pair in `cache_dir` (memory-mapped afterwards), with a
manifest checked against the source files on every reuse.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from seglab.data.base import (
    BadSampleWarning,
    SegmentationReader,
    not_found,
    require_dir,
    seeded_split,
)
from seglab.data.cache import announce, cache_dir_for, fingerprint, read_manifest, write_manifest
from seglab.errors import BadSampleError, ConfigError

CACHE_VERSION = 1
URL = "https://competitions.codalab.org/competitions/17094"
_LAYOUT = """\
  <root>/
    Training Batch 1/volume-0.nii ... volume-27.nii, segmentation-0.nii ...
    Training Batch 2/volume-28.nii ... volume-130.nii, segmentation-28.nii ...
  (any folder depth; volume-N pairs with segmentation-N; .nii or .nii.gz)"""
_SOURCE = f"Get 'Training Batch 1' and 'Training Batch 2' from {URL} and unzip them into <root>."
_NAME = re.compile(r"^(volume|segmentation)-(\d+)\.nii(\.gz)?$")


def find_pairs(root: Path) -> dict[int, tuple[Path, Path]]:
    """{N: (volume-N, segmentation-N)} found anywhere under root, paired by the integer N."""
    found: dict[str, dict[int, Path]] = {"volume": {}, "segmentation": {}}
    for path in root.rglob("*.nii*"):
        match = _NAME.match(path.name)
        if match:
            found[match.group(1)][int(match.group(2))] = path
    return {
        n: (vol, found["segmentation"][n])
        for n, vol in sorted(found["volume"].items())
        if n in found["segmentation"]
    }


def split_volumes(numbers: list[int], split: str, val_fraction: float, seed: int) -> list[int]:
    """The seeded by-volume split (see the module docstring)."""
    num_val = max(1, round(val_fraction * len(numbers))) if len(numbers) > 1 else 0
    return seeded_split(numbers, split, num_val, seed, "LiTS")


def window(hu: np.ndarray, low: float, high: float) -> np.ndarray:
    """HU clipped to [low, high] and scaled to [0, 1]."""
    return ((np.clip(hu, low, high) - low) / (high - low)).astype(np.float32)


def _load_volume(
    vol_path: Path, seg_path: Path, hu_window: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Windowed image and uint8 labels, both slice-major [S, H, W]."""
    import nibabel as nib

    arrays = []
    for path in (vol_path, seg_path):
        try:
            arrays.append(np.asarray(nib.load(str(path)).get_fdata(dtype=np.float32)))
        except Exception as e:  # nibabel raises many kinds for truncated/corrupt files
            raise BadSampleError(f"{path}: cannot read NIfTI ({type(e).__name__}: {e})") from e
    image, labels = arrays
    if image.ndim != 3:
        raise BadSampleError(f"{vol_path}: expected a 3-D volume, got shape {image.shape}")
    if labels.shape != image.shape:
        raise BadSampleError(
            f"{seg_path}: segmentation shape {labels.shape} differs from the volume's {image.shape}"
        )
    labels = np.rint(labels)
    if labels.min() < 0 or labels.max() > 255:
        raise BadSampleError(f"{seg_path}: label values outside 0..255")
    image = window(image, *hu_window).transpose(2, 0, 1)
    return np.ascontiguousarray(image.astype(np.float16)), np.ascontiguousarray(
        labels.astype(np.uint8).transpose(2, 0, 1)
    )


class LiTS(SegmentationReader):
    """Axial slices of LiTS volumes; items add `group` = the volume number (per-case Dice)."""

    dataset_name = "LiTS"

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transform: Callable[..., dict[str, Any]] | None = None,
        num_classes: int = 3,
        ignore_index: int = 255,
        skip_bad: bool = False,
        cache_dir: str | Path = ".cache",
        context: int = 1,
        hu_window: tuple[float, float] = (-200.0, 250.0),
        val_fraction: float = 0.2,
        seed: int = 0,
        liver_only_train: bool = False,
        in_channels: int | None = None,
    ) -> None:
        super().__init__(split, transform, num_classes, ignore_index, skip_bad)
        if in_channels is not None and in_channels != 2 * context + 1:
            raise ConfigError(
                f"data.in_channels={in_channels} but data.context={context} gives "
                f"{2 * context + 1} channels (the slice and {context} neighbour(s) on each side)"
            )
        self.root = require_dir(self.dataset_name, root, _LAYOUT, _SOURCE)
        pairs = find_pairs(self.root)
        if not pairs:
            raise not_found(
                self.dataset_name, "no volume-N.nii / segmentation-N.nii pairs", self.root,
                _LAYOUT, _SOURCE,
            )  # fmt: skip
        self.context = int(context)
        self.hu_window = (float(hu_window[0]), float(hu_window[1]))
        self.cache = cache_dir_for(cache_dir, "lits", self.root)
        self.volumes: dict[int, tuple[Path, Path]] = {}
        self.slices: list[tuple[int, int]] = []  # (volume number, slice index)
        self._arrays: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        skip_empty = liver_only_train and split == "train"
        for n in split_volumes(list(pairs), split, val_fraction, seed):
            try:
                liver = self._ensure_cached(n, *pairs[n])
            except BadSampleError as error:
                if not skip_bad:
                    raise
                warnings.warn(f"skipping bad volume: {error}", BadSampleWarning, stacklevel=2)
                continue
            self.volumes[n] = pairs[n]
            self.slices += [(n, z) for z, has in enumerate(liver) if has or not skip_empty]

    def _entry(self, n: int) -> Path:
        return self.cache / f"volume-{n}"

    def _ensure_cached(self, n: int, vol: Path, seg: Path) -> list[bool]:
        """Build (once) the volume's npy pair; returns which slices contain liver."""
        params = {"version": CACHE_VERSION, "hu_window": list(self.hu_window)}
        expected = fingerprint([vol, seg], params)
        entry = self._entry(n)
        manifest = read_manifest(entry, expected)
        if manifest is not None:
            return manifest["liver"]
        announce(f"LiTS: caching {vol.name} as 2-D slices in {entry} (once per volume)")
        image, labels = _load_volume(vol, seg, self.hu_window)
        entry.mkdir(parents=True, exist_ok=True)
        np.save(entry / "image.npy", image)
        np.save(entry / "label.npy", labels)
        liver = [bool(x) for x in (labels.reshape(len(labels), -1).max(axis=1) >= 1)]
        write_manifest(entry, expected, shape=list(image.shape), liver=liver)
        return liver

    def _volume(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        # Opened lazily per process (DataLoader workers each map their own).
        if n not in self._arrays:
            entry = self._entry(n)
            self._arrays[n] = (
                np.load(entry / "image.npy", mmap_mode="r"),
                np.load(entry / "label.npy", mmap_mode="r"),
            )
        return self._arrays[n]

    def __len__(self) -> int:
        return len(self.slices)

    def sample_id(self, index: int) -> str:
        n, z = self.slices[index]
        return f"volume-{n}_slice-{z:04d}"

    def sample_paths(self, index: int) -> dict[str, Path]:
        vol, seg = self.volumes[self.slices[index][0]]
        return {"image": vol, "mask": seg}

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        n, z = self.slices[index]
        image, labels = self._volume(n)
        picks = np.clip(np.arange(z - self.context, z + self.context + 1), 0, len(image) - 1)
        return np.asarray(image[picks], dtype=np.float32).transpose(1, 2, 0), np.array(labels[z])

    def extra(self, index: int) -> dict[str, Any]:
        return {"group": self.slices[index][0]}
