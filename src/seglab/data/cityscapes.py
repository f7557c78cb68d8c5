"""Cityscapes (gtFine): leftImg8bit + labelIds, labelId → trainId through a lookup table."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from seglab.data.base import SegmentationReader, apply_lut, label_lut, not_found, require_dir
from seglab.data.instance_spec import InstanceSpec, keep_instances
from seglab.data.io import read_image, read_label_png
from seglab.errors import BadSampleError

# The official table (cityscapesScripts labels.py): 19 train classes, everything else 255.
LABEL_TO_TRAIN: dict[int, int] = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11,
    25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}  # fmt: skip
NUM_LABEL_IDS = 34  # labelIds 0..33; larger values are not Cityscapes labels
INSTANCE_ID_BASE = 1000  # instanceIds: labelId * 1000 + k for instance k of a class
LUT = label_lut({i: LABEL_TO_TRAIN.get(i, 255) for i in range(NUM_LABEL_IDS)}, invalid=256)

URL = "https://www.cityscapes-dataset.com/downloads/"
_LAYOUT = """\
  <root>/
    leftImg8bit/{train,val,test}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    gtFine/{train,val,test}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png
    gtFine/.../<city>_<seq>_<frame>_gtFine_instanceIds.png   (model=mask_rcnn)"""
_SOURCE = (
    f"Get leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip from {URL} (login needed) "
    "and unzip both into <root>."
)
IMAGE_SUFFIX = "_leftImg8bit.png"


class Cityscapes(SegmentationReader):
    """Cityscapes fine annotations; the split is the folder (train/val/test), i.e. by city."""

    dataset_name = "Cityscapes"

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transform: Callable[..., dict[str, Any]] | None = None,
        num_classes: int = 19,
        ignore_index: int = 255,
        skip_bad: bool = False,
    ) -> None:
        super().__init__(split, transform, num_classes, ignore_index, skip_bad)
        self.root = require_dir(self.dataset_name, root, _LAYOUT, _SOURCE)
        image_dir, gt_dir = self.root / "leftImg8bit" / split, self.root / "gtFine" / split
        for folder in (image_dir, gt_dir):
            if not folder.is_dir():
                raise not_found(self.dataset_name, "missing folder", folder, _LAYOUT, _SOURCE)
        self.images = sorted(image_dir.glob(f"*/*{IMAGE_SUFFIX}"))
        if not self.images:
            raise not_found(
                self.dataset_name, f"no <city>/*{IMAGE_SUFFIX}", image_dir, _LAYOUT, _SOURCE
            )
        self.masks = [
            gt_dir / p.parent.name / p.name.replace(IMAGE_SUFFIX, "_gtFine_labelIds.png")
            for p in self.images
        ]
        missing = [m for m in self.masks if not m.is_file()]
        if missing:
            raise not_found(
                self.dataset_name,
                f"{len(missing)} image(s) without gtFine labelIds",
                missing[0],
                _LAYOUT,
                _SOURCE,
            )
        self.cities = sorted({p.parent.name for p in self.images})

    def __len__(self) -> int:
        return len(self.images)

    def sample_id(self, index: int) -> str:
        return self.images[index].name[: -len(IMAGE_SUFFIX)]

    def sample_paths(self, index: int) -> dict[str, Path]:
        return {
            "image": self.images[index],
            "mask": self.masks[index],
            "instances": self.instance_path(index),
        }

    def read_instances(
        self, index: int, mask: np.ndarray, spec: InstanceSpec
    ) -> tuple[np.ndarray, np.ndarray]:
        """gtFine instanceIds: labelId·1000 + k is instance k of that class; a plain labelId
        on an instance class is a crowd/group region, which makes no instance."""
        path = self.instance_path(index)
        if not path.is_file():
            raise BadSampleError(f"{path}: missing (instance targets need gtFine instanceIds)")
        ids = read_label_png(path, ("I", "I;16", "I;16B", "L")).astype(np.int64)
        masks, classes = [], []
        for value in np.unique(ids[ids >= INSTANCE_ID_BASE]):
            label_id = int(value) // INSTANCE_ID_BASE
            if label_id >= NUM_LABEL_IDS:
                raise BadSampleError(f"{path}: instance id {value} has no Cityscapes labelId")
            masks.append(ids == value)
            classes.append(int(LUT[label_id]))
        return keep_instances(masks, classes, spec, mask.shape)

    def instance_path(self, index: int) -> Path:
        return self.masks[index].with_name(
            self.masks[index].name.replace("_labelIds.png", "_instanceIds.png")
        )

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image = read_image(self.images[index])
        raw = read_label_png(self.masks[index], ("L", "P"))
        return image, apply_lut(LUT, raw, self.masks[index], self.dataset_name)
