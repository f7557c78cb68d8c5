"""Clothing Co-Parsing (CCP): photos/*.jpg + annotations/pixel-level/*.mat (key `groundtruth`).

CCP ships no split. seglab's is fixed and documented: the ids of the pixel-annotated photos,
sorted, permuted by `numpy.random.default_rng(seed=0)`; the first `val_size` (200) are val,
the other 804 train. The permutation depends only on the sorted ids, so it is the same on
every machine and run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from seglab.data.base import SegmentationReader, not_found, require_dir, seeded_split
from seglab.data.io import read_image, read_mat

URL = "https://github.com/bearpaw/clothing-co-parsing"
NUM_CLASSES = 59
NEVER_USED_IDS = (12, 23, 30, 50)  # clogs, intimate, panties, swimwear: no pixel in the masks
_LAYOUT = """\
  <root>/
    photos/0001.jpg ... 2098.jpg
    annotations/pixel-level/0001.mat ... 1004.mat   (key 'groundtruth': uint8 label ids)
    label_list.mat                                   (key 'label_list': 1x59 cell of names)"""
_SOURCE = f"Get it with `git clone {URL}` (or its zip); <root> is the clone."


def read_label_names(root: str | Path) -> list[str]:
    """The 59 class names from `label_list.mat` (value v names `label_list[0][v]`)."""
    path = Path(root) / "label_list.mat"
    if not path.is_file():
        raise not_found("CCP", "missing label_list.mat", path, _LAYOUT, _SOURCE)
    cells = read_mat(path, "label_list")
    return [str(np.asarray(c).ravel()[0]) for c in cells.ravel()]


def ccp_split(ids: list[str], split: str, val_size: int = 200, seed: int = 0) -> list[str]:
    """The fixed, seeded split of the annotated ids (see the module docstring)."""
    return seeded_split(ids, split, val_size, seed, "CCP")


class CCP(SegmentationReader):
    """CCP pixel-level annotations; 59 classes, 0 = `null` (background), no void label."""

    dataset_name = "CCP"

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transform: Callable[..., dict[str, Any]] | None = None,
        num_classes: int = NUM_CLASSES,
        ignore_index: int = 255,
        skip_bad: bool = False,
        val_size: int = 200,
        seed: int = 0,
    ) -> None:
        super().__init__(split, transform, num_classes, ignore_index, skip_bad)
        self.root = require_dir(self.dataset_name, root, _LAYOUT, _SOURCE)
        self.photo_dir = self.root / "photos"
        self.anno_dir = self.root / "annotations" / "pixel-level"
        for folder in (self.photo_dir, self.anno_dir):
            if not folder.is_dir():
                raise not_found(self.dataset_name, "missing folder", folder, _LAYOUT, _SOURCE)
        annotated = [p.stem for p in self.anno_dir.glob("*.mat")]
        if not annotated:
            raise not_found(
                self.dataset_name, "no .mat annotations", self.anno_dir, _LAYOUT, _SOURCE
            )
        self.ids = ccp_split(annotated, split, val_size, seed)
        missing = [i for i in self.ids if not (self.photo_dir / f"{i}.jpg").is_file()]
        if missing:
            raise not_found(
                self.dataset_name,
                f"{len(missing)} annotation(s) without a photo",
                self.photo_dir / f"{missing[0]}.jpg",
                _LAYOUT,
                _SOURCE,
            )

    def __len__(self) -> int:
        return len(self.ids)

    def sample_id(self, index: int) -> str:
        return self.ids[index]

    def sample_paths(self, index: int) -> dict[str, Path]:
        i = self.ids[index]
        return {"image": self.photo_dir / f"{i}.jpg", "mask": self.anno_dir / f"{i}.mat"}

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        paths = self.sample_paths(index)
        return read_image(paths["image"]), read_mat(paths["mask"], "groundtruth")
