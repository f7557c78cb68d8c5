"""The part every dataset reader shares: validation, bad-sample policy, transform, tensors.

A reader subclass only says where sample `i` lives (`sample_paths`) and how to read it raw
(`read`: image array, label array). Keeping the raw read apart from the transform lets other
targets (instance masks, statistics) reuse the same files without the augmentation.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from seglab.data.instance_spec import InstanceSpec, connected_instances
from seglab.errors import BadSampleError, ConfigError, DatasetNotFoundError

T = TypeVar("T", int, str)
L = TypeVar("L")
SKIPPED_KEY = "skipped"  # per-sample: the bad file passed over to produce it ("" if none)
# The dataset split each role reads unless `data.splits` says otherwise (test reads val).
DEFAULT_SPLITS = {"train": "train", "val": "val", "test": "val"}


class BadSampleWarning(UserWarning):
    """A sample was skipped (data.skip_bad=true) because its files cannot be used."""


def label_lut(mapping: dict[int, int], invalid: int = -1) -> np.ndarray:
    """A 256-entry lookup table: raw value → class id; unmapped values → `invalid` (int16)."""
    lut = np.full(256, invalid, dtype=np.int16)
    for raw, new in mapping.items():
        lut[raw] = new
    return lut


def label_values(mask: np.ndarray) -> np.ndarray:
    """The distinct values of a label mask, sorted. uint8 masks (nearly all) by cv2's 256-bin
    histogram: a sixth of `np.unique`'s time (its hashing was a tenth of a 512² crop's pipeline)."""
    if mask.dtype == np.uint8:
        flat = np.ascontiguousarray(mask).reshape(-1, 1)
        counts = cv2.calcHist([flat], [0], None, [256], [0, 256]).ravel()
        return np.flatnonzero(counts).astype(np.uint8)
    return np.unique(mask)


def any_flagged(mask: np.ndarray, flagged: np.ndarray) -> bool:
    """Whether a uint8 mask holds a value whose entry in the 256-entry uint8 table `flagged` is
    non-zero: one cv2 table lookup and a max, a fifth of `label_values`' histogram (0.65 vs
    3.3 ms at 2048×1024). `label_values` then names the values, on the error path only."""
    return int(cv2.LUT(np.ascontiguousarray(mask), flagged).max()) > 0


def as_tensor_sample(image: Any, mask: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Image float C×H×W, mask long H×W, from arrays (H×W×C) or ToTensorV2 output; a uint8
    tensor stays uint8 (a pipeline that leaves normalisation to the device made it)."""
    if isinstance(image, torch.Tensor):
        img = image if image.dtype == torch.uint8 else image.float()
    else:
        arr = np.asarray(image)
        if arr.ndim == 2:
            arr = arr[..., None]
        img = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).float()
        if arr.dtype == np.uint8:
            img = img.div_(255.0)
    return img, torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask)


class SegmentationReader(Dataset):
    """Base of every reader: items `{"image": float[C,H,W], "mask": long[H,W], "id": str}`
    (the image uint8 when the transform leaves normalisation to the device).

    Each sample is checked as it is read (image readable, mask the image's size, labels inside
    the classes or the ignore index), so a bad file names itself instead of surfacing later as
    a device assert or a silently wrong metric. With `skip_bad` it is replaced by the next good
    sample, with a warning naming it, and the item records the file in `skipped` so the
    DataModule can count the files across worker processes.
    """

    dataset_name: str = "dataset"

    def __init__(
        self,
        split: str,
        transform: Callable[..., dict[str, Any]] | None,
        num_classes: int,
        ignore_index: int = 255,
        skip_bad: bool = False,
    ) -> None:
        self.split = split
        self.transform = transform
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.skip_bad = bool(skip_bad)
        if self.num_classes < 1:
            raise ConfigError(f"data.num_classes must be >= 1, got {num_classes}")
        # uint8 mask values that are neither a class nor the ignore index (`load`'s check).
        self._not_labels = np.ones(256, dtype=np.uint8)
        self._not_labels[: min(self.num_classes, 256)] = 0
        if 0 <= self.ignore_index < 256:
            self._not_labels[self.ignore_index] = 0

    # --- what a subclass provides -----------------------------------------------------------
    def __len__(self) -> int:
        raise NotImplementedError

    def sample_id(self, index: int) -> str:
        """A short name of the sample (file stem), carried in the item as `id`."""
        raise NotImplementedError

    def sample_paths(self, index: int) -> dict[str, Path]:
        """The files sample `index` is read from (`image`, `mask`, ...), for messages."""
        raise NotImplementedError

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The raw pair: image H×W×C (uint8, or float32 in [0, 1]) and class-id mask H×W.

        Label mappings (LUTs) are applied here; values a LUT marks invalid are returned as a
        negative or out-of-range number so `load` can name them.
        """
        raise NotImplementedError

    def extra(self, index: int) -> dict[str, Any]:
        """Dataset-specific item keys (e.g. the `group` of a per-case metric)."""
        return {}

    def prepare_instances(self) -> None:
        """Load what `read_instances` needs once, before DataLoader workers fork (default: none)."""

    def read_instances(
        self, index: int, mask: np.ndarray, spec: InstanceSpec
    ) -> tuple[np.ndarray, np.ndarray]:
        """Instance masks uint8 [N,H,W] and their class ids [N] for sample `index`, whose
        validated class mask is `mask`. Default: connected components of the thing classes;
        readers with native instance annotations override it."""
        return connected_instances(mask, spec)

    # --- shared ---------------------------------------------------------------------------
    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The raw, validated pair; raises BadSampleError naming the file and the problem."""
        image, mask = self.read(index)
        mask_path = self.sample_paths(index).get("mask")
        where = str(mask_path) if mask_path is not None else self.sample_id(index)
        if mask.shape != image.shape[:2]:
            raise BadSampleError(
                f"{where}: mask size {mask.shape[1]}x{mask.shape[0]} differs from the "
                f"image size {image.shape[1]}x{image.shape[0]}"
            )
        if (
            mask.dtype == np.uint8
            and mask.size
            and (int(mask.max()) < self.num_classes or not any_flagged(mask, self._not_labels))
        ):
            return image, mask  # every value a class or the ignore index
        values = label_values(mask)
        bad = values[((values < 0) | (values >= self.num_classes)) & (values != self.ignore_index)]
        if bad.size:
            raise BadSampleError(
                f"{where}: label values {bad.tolist()} outside 0..{self.num_classes - 1} "
                f"and the ignore index {self.ignore_index} ({self.dataset_name})"
            )
        return image, mask.astype(np.uint8) if mask.dtype != np.uint8 else mask

    def load_or_skip(
        self, index: int, load: Callable[[int], L] | None = None
    ) -> tuple[int, L, str]:
        """(index used, `load(index used)`, bad file passed over or ""): sample `index`, or with
        `skip_bad` the next one that loads. `load` defaults to `self.load`."""
        load = load or self.load  # type: ignore[assignment]
        try:
            return index, load(index), ""
        except BadSampleError as error:
            if not self.skip_bad:
                raise
            warnings.warn(f"skipping bad sample: {error}", BadSampleWarning, stacklevel=2)
            first_bad = str(error).split(": ", 1)[0]
        # A neighbouring good sample keeps the batch full; give up only if none is usable.
        for step in range(1, len(self)):
            other = (index + step) % len(self)
            try:
                return other, load(other), first_bad
            except BadSampleError as error:
                warnings.warn(f"skipping bad sample: {error}", BadSampleWarning, stacklevel=2)
        raise BadSampleError(f"{self.dataset_name} {self.split}: no sample could be read")

    def __getitem__(self, index: int) -> dict[str, Any]:
        used, (image, mask), skipped = self.load_or_skip(index)
        if self.transform is None:
            img_t, mask_t = as_tensor_sample(image, mask)
        else:
            out = self.transform(image=image, mask=mask)
            img_t, mask_t = as_tensor_sample(out["image"], out["mask"])
        item: dict[str, Any] = {"image": img_t, "mask": mask_t.long(), "id": self.sample_id(used)}
        item.update(self.extra(used))
        if self.skip_bad:
            item[SKIPPED_KEY] = skipped
        return item


def role_splits(splits: Mapping[str, str] | None) -> dict[str, str]:
    """{role: split name} for the roles train/val/test: `splits` over `DEFAULT_SPLITS`."""
    return {**DEFAULT_SPLITS, **(splits or {})}


def seeded_split(items: Sequence[T], split: str, num_val: int, seed: int, dataset: str) -> list[T]:
    """A fixed split of a dataset that ships none: the sorted items permuted by
    `numpy.random.default_rng(seed)`, the first `num_val` val, the rest train ("all": every
    item). It depends only on the sorted items, so it is the same on every machine and run."""
    ordered = sorted(items)
    if split == "all":
        return ordered
    if split not in ("train", "val"):
        raise ConfigError(f"{dataset} split must be 'train', 'val' or 'all', got {split!r}")
    perm = np.random.default_rng(seed).permutation(len(ordered))
    picked = perm[:num_val] if split == "val" else perm[num_val:]
    return [ordered[i] for i in sorted(picked)]


def not_found(
    dataset: str, what: str, path: Path, layout: str, source: str
) -> DatasetNotFoundError:
    """A DatasetNotFoundError naming the path, the expected tree and where to get the data."""
    return DatasetNotFoundError(f"{dataset}: {what}: {path}\nExpected layout:\n{layout}\n{source}")


def require_dir(dataset: str, root: str | Path, layout: str, source: str) -> Path:
    """`root` as a Path, or the not-found error if it is not a directory."""
    path = Path(root).expanduser()
    if not path.is_dir():
        raise not_found(dataset, "dataset root does not exist", path, layout, source)
    return path


def apply_lut(lut: np.ndarray, raw: np.ndarray, path: Path, dataset: str) -> np.ndarray:
    """`lut[raw]` as uint8; raw values the table marks invalid (< 0 or > 255) name the file."""
    if raw.dtype == np.uint8 and lut.size == 256 and raw.size:
        # The common case, by cv2's table lookup (a tenth of numpy indexing).
        valid = (lut >= 0) & (lut <= 255)
        raw = np.ascontiguousarray(raw)
        if not (lut[valid] == 255).any():  # 255 is free to mark invalid raw values: one max
            mapped = cv2.LUT(raw, np.where(valid, lut, 255).astype(np.uint8)).reshape(raw.shape)
            if mapped.max() < 255:
                return mapped
        elif not any_flagged(raw, (~valid).astype(np.uint8)):  # 255 maps to a label (ignore)
            return cv2.LUT(raw, lut.clip(0, 255).astype(np.uint8)).reshape(raw.shape)
        present = label_values(raw)
        invalid = present[~valid[present]]
        if invalid.size:
            raise BadSampleError(
                f"{path}: raw label values {invalid.tolist()} are not {dataset} labels"
            )
        return cv2.LUT(raw, lut.clip(0, 255).astype(np.uint8)).reshape(raw.shape)
    if raw.dtype != np.uint8:
        too_big = np.unique(raw[(raw < 0) | (raw >= lut.size)])
        if too_big.size:
            raise BadSampleError(
                f"{path}: raw label values {too_big.tolist()} unknown to {dataset}"
            )
    mapped = lut[raw]
    invalid = (mapped < 0) | (mapped > 255)
    if invalid.any():
        raise BadSampleError(
            f"{path}: raw label values {np.unique(raw[invalid]).tolist()} are not {dataset} labels"
        )
    return mapped.astype(np.uint8)
