"""COCO-Stuff 164k (stuffthingmaps), read as unpacked: 182 raw ids → the usual 171 classes.

Raw mask values are `labels.txt id − 1` (0 = person) and 255 = unlabeled. Eleven raw ids have
no pixels in the release (COCO's removed thing ids); dropping them and renumbering the other 171
monotonically is the common training form. Files already converted that way
(`<id>_labelTrainIds.png`) are read as they are.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from seglab.data.base import SegmentationReader, apply_lut, label_lut, not_found, require_dir
from seglab.data.cache import announce
from seglab.data.instance_spec import InstanceSpec, keep_instances
from seglab.data.io import read_image, read_label_png
from seglab.errors import BadSampleError

DROPPED_RAW_IDS: tuple[int, ...] = (11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90)
KEPT_RAW_IDS: tuple[int, ...] = tuple(i for i in range(182) if i not in DROPPED_RAW_IDS)
INVALID = 256  # LUT value for raw ids that are no class at all (182..254)
# raw 0..181 → 0..170 (dropped → 255), 255 stays 255, anything else is refused.
RAW_TO_TRAIN = label_lut(
    {**{raw: i for i, raw in enumerate(KEPT_RAW_IDS)}, **dict.fromkeys(DROPPED_RAW_IDS, 255),
     255: 255},
    invalid=INVALID,
)  # fmt: skip
TRAIN_IDS_SUFFIX = "_labelTrainIds.png"
# The 171 class names (train id order) live in the data config, conf/data/coco_stuff.yaml.

URL = "https://github.com/nightrome/cocostuff"
_LAYOUT = """\
  <root>/
    images/{train2017,val2017}/000000000139.jpg
    annotations/{train2017,val2017}/000000000139.png   (stuffthingmaps: raw ids 0..181, 255)
      or 000000000139_labelTrainIds.png                (already mapped to 0..170, 255)
    annotations/instances_{train2017,val2017}.json     (COCO instances; optional, model=mask_rcnn)"""
_SOURCE = (
    f"Get train2017.zip and val2017.zip (images, cocodataset.org) and "
    f"stuffthingmaps_trainval2017.zip (annotations) from {URL}; unzip images into images/ and "
    "the stuffthingmaps into annotations/."
)


class COCOStuff(SegmentationReader):
    """COCO-Stuff 164k: `split` is the folder name (`train2017`, `val2017`)."""

    dataset_name = "COCO-Stuff"

    def __init__(
        self,
        root: str | Path,
        split: str = "train2017",
        transform: Callable[..., dict[str, Any]] | None = None,
        num_classes: int = 171,
        ignore_index: int = 255,
        skip_bad: bool = False,
    ) -> None:
        super().__init__(split, transform, num_classes, ignore_index, skip_bad)
        self.root = require_dir(self.dataset_name, root, _LAYOUT, _SOURCE)
        self.image_dir = self.root / "images" / split
        self.mask_dir = self.root / "annotations" / split
        for folder in (self.image_dir, self.mask_dir):
            if not folder.is_dir():
                raise not_found(self.dataset_name, "missing folder", folder, _LAYOUT, _SOURCE)
        # Converted masks win where both exist: they are what the user prepared on purpose.
        converted = {
            p.name[: -len(TRAIN_IDS_SUFFIX)] for p in self.mask_dir.glob("*" + TRAIN_IDS_SUFFIX)
        }
        self.converted = bool(converted)
        self._coco: Any = None  # pycocotools COCO over instances_<split>.json, once read
        self._coco_ids: dict[str, int] = {}
        self.ids = sorted(p.stem for p in self.image_dir.glob("*.jpg"))
        if not self.ids:
            raise not_found(self.dataset_name, "no .jpg images", self.image_dir, _LAYOUT, _SOURCE)
        missing = [i for i in self.ids if not self.mask_path(i).is_file()]
        if missing:
            raise not_found(
                self.dataset_name,
                f"{len(missing)} image(s) without a mask, e.g. {missing[0]}",
                self.mask_path(missing[0]),
                _LAYOUT,
                _SOURCE,
            )

    def instances_json(self) -> Path:
        return self.root / "annotations" / f"instances_{self.split}.json"

    def prepare_instances(self) -> None:
        """Parse COCO's instances json once (before DataLoader workers fork), if present."""
        path = self.instances_json()
        if self._coco is not None or not path.is_file():
            return
        from pycocotools.coco import COCO

        announce(f"COCO-Stuff: reading thing instances from {path}")
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
            self._coco = COCO(str(path))
        self._coco_ids = {img["file_name"]: i for i, img in self._coco.imgs.items()}

    def read_instances(
        self, index: int, mask: np.ndarray, spec: InstanceSpec
    ) -> tuple[np.ndarray, np.ndarray]:
        """COCO's instance polygons/RLEs (crowd regions left out) when instances_<split>.json
        is there, else connected components of the class mask."""
        self.prepare_instances()
        if self._coco is None:
            return super().read_instances(index, mask, spec)
        image_id = self._coco_ids.get(f"{self.ids[index]}.jpg")
        if image_id is None:
            raise BadSampleError(f"{self.instances_json()}: no entry for {self.ids[index]}.jpg")
        masks, classes = [], []
        for ann in self._coco.loadAnns(self._coco.getAnnIds(imgIds=image_id, iscrowd=False)):
            masks.append(self._coco.annToMask(ann))
            classes.append(int(RAW_TO_TRAIN[ann["category_id"] - 1]))
        if masks and masks[0].shape != mask.shape:
            raise BadSampleError(
                f"{self.instances_json()}: image {image_id} is {masks[0].shape[1]}x"
                f"{masks[0].shape[0]}, its stuffthingmap {mask.shape[1]}x{mask.shape[0]}"
            )
        return keep_instances(masks, classes, spec, mask.shape)

    def mask_path(self, sample_id: str) -> Path:
        name = sample_id + (TRAIN_IDS_SUFFIX if self.converted else ".png")
        return self.mask_dir / name

    def __len__(self) -> int:
        return len(self.ids)

    def sample_id(self, index: int) -> str:
        return self.ids[index]

    def sample_paths(self, index: int) -> dict[str, Path]:
        sample_id = self.ids[index]
        return {"image": self.image_dir / f"{sample_id}.jpg", "mask": self.mask_path(sample_id)}

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        paths = self.sample_paths(index)
        image = read_image(paths["image"])
        raw = read_label_png(paths["mask"])
        if self.converted:
            return image, raw
        return image, apply_lut(RAW_TO_TRAIN, raw, paths["mask"], self.dataset_name)
