"""Instance targets (torchvision's boxes/labels/masks dicts) from any dataset reader.

Readers with native instance annotations (VOC SegmentationObject, Cityscapes instanceIds, COCO
instances json) override `SegmentationReader.read_instances`; every other dataset gets the
connected components of its "thing" classes in the class mask. The class mask travels along
(`mask`), so instance models are scored with the same semantic metrics as semantic ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, default_collate
from torchvision.ops import masks_to_boxes

from seglab.data.base import SKIPPED_KEY, SegmentationReader, as_tensor_sample
from seglab.data.instance_spec import (  # re-exported: the instance API in one import
    InstanceSpec,
    connected_instances,
    empty_instances,
    keep_instances,
)
from seglab.errors import BadSampleError

__all__ = [
    "TARGET_KEY",
    "InstanceDataset",
    "InstanceSpec",
    "collate_instances",
    "connected_instances",
    "empty_instances",
    "instance_target",
    "instances_from_ids",
    "keep_instances",
]

TARGET_KEY = "target"  # per-sample torchvision target dict


def instances_from_ids(
    ids: np.ndarray, class_mask: np.ndarray, spec: InstanceSpec, void: Sequence[int] = (0, 255)
) -> tuple[np.ndarray, np.ndarray]:
    """Instances of an object-id map (VOC SegmentationObject): each id is one instance, its
    class the most frequent class of the class mask under it (void pixels aside)."""
    masks, classes = [], []
    for value in np.unique(ids):
        if value in void:
            continue
        inside = ids == value
        under = class_mask[inside]
        under = under[np.isin(under, spec.thing_classes)]
        if under.size:
            masks.append(inside)
            classes.append(int(np.bincount(under).argmax()))
    return keep_instances(masks, classes, spec, ids.shape)


def instance_target(masks: Tensor, classes: Tensor, spec: InstanceSpec) -> dict[str, Tensor]:
    """torchvision's target from (augmented) binary masks: instances the augmentation emptied
    are dropped; boxes enclose the mask's pixels (x2, y2 exclusive, so never of zero size)."""
    masks = masks.bool()
    keep = masks.flatten(1).any(dim=1) if len(masks) else torch.zeros(0, dtype=torch.bool)
    masks, classes = masks[keep], classes[keep]
    boxes = masks_to_boxes(masks) if len(masks) else torch.zeros((0, 4))
    boxes[:, 2:] += 1
    labels = torch.from_numpy(spec.label_of(classes.numpy())) if len(classes) else classes
    return {"boxes": boxes.float(), "labels": labels.long(), "masks": masks.to(torch.uint8)}


class InstanceDataset(Dataset):
    """A reader's samples with instance targets: `{"image", "mask", "target", "id", ...}`.

    The augmentation is applied to the image, the class mask and every instance mask together;
    boxes are derived afterwards from the augmented masks, so they always agree with them.
    """

    def __init__(
        self,
        reader: SegmentationReader,
        spec: InstanceSpec,
        transform: Callable[..., dict[str, Any]] | None,
    ) -> None:
        self.reader = reader
        self.spec = spec
        self.transform = transform
        reader.prepare_instances()

    def __len__(self) -> int:
        return len(self.reader)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Image, class mask, instance masks [N,H,W] and their classes; checked like `load`."""
        image, mask = self.reader.load(index)
        masks, classes = self.reader.read_instances(index, mask, self.spec)
        if masks.shape[1:] != mask.shape:
            where = self.reader.sample_paths(index).get("instances", self.reader.sample_id(index))
            raise BadSampleError(
                f"{where}: instance masks of size {masks.shape[2]}x{masks.shape[1]} differ from "
                f"the class mask's {mask.shape[1]}x{mask.shape[0]}"
            )
        return image, mask, masks, classes

    def __getitem__(self, index: int) -> dict[str, Any]:
        used, (image, mask, masks, classes), skipped = self.reader.load_or_skip(index, self.load)
        if self.transform is None:
            out: dict[str, Any] = {"image": image, "mask": mask, "masks": masks}
        else:
            # albumentations refuses an empty `masks`; padding fills masks with the ignore
            # index, so instance pixels are those equal to 1.
            extra = {"masks": masks} if len(masks) else {}
            out = self.transform(image=image, mask=mask, **extra)
        img_t, mask_t = as_tensor_sample(out["image"], out["mask"])
        inst = torch.as_tensor(np.asarray(out["masks"])) if len(masks) else None
        if inst is None:
            inst = torch.zeros((0, *mask_t.shape), dtype=torch.uint8)
        item: dict[str, Any] = {
            "image": img_t,
            "mask": mask_t.long(),
            TARGET_KEY: instance_target(inst == 1, torch.from_numpy(classes), self.spec),
            "id": self.reader.sample_id(used),
        }
        item.update(self.reader.extra(used))
        if self.reader.skip_bad:
            item[SKIPPED_KEY] = skipped
        return item


def collate_instances(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Targets and ids as lists; images and masks stacked when they share a size, else lists
    (Mask R-CNN takes images of any size); everything else as the default collate does."""
    out: dict[str, Any] = {}
    for key in batch[0]:
        values = [sample[key] for sample in batch]
        ragged = isinstance(values[0], Tensor) and any(v.shape != values[0].shape for v in values)
        listed = ragged or key in (TARGET_KEY, "id", SKIPPED_KEY)
        out[key] = values if listed else default_collate(values)
    return out
