"""Which classes form instances, and instances from a class mask (connected components).

The bottom of `seglab.data`: `base.SegmentationReader.read_instances` defaults to
`connected_instances`, and `instances` (the instance dataset built on the readers) re-exports
all of this, so neither of the two needs the other to describe an instance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from seglab.errors import ConfigError

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class InstanceSpec:
    """Which classes are objects (`thing_classes`, class ids) and the smallest kept instance."""

    thing_classes: tuple[int, ...]
    min_area: int = 1

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None, num_classes: int) -> InstanceSpec:
        """From `data.instance`, checked against the data's classes."""
        if not cfg or not cfg.get("thing_classes"):
            raise ConfigError(
                "data.instance.thing_classes is not set: instance segmentation (model.task="
                "instance) needs the class ids that form objects, e.g. data.instance.thing_classes"
                "=[1,2]"
            )
        things = tuple(int(c) for c in cfg["thing_classes"])
        bad = [c for c in things if not 0 <= c < num_classes]
        if bad or len(set(things)) != len(things):
            raise ConfigError(
                f"data.instance.thing_classes={list(things)}: expected distinct class ids in "
                f"0..{num_classes - 1}"
            )
        return cls(things, max(1, int(cfg.get("min_area", 1))))

    def label_of(self, class_ids: np.ndarray) -> np.ndarray:
        """Detector labels (1-based; 0 is torchvision's background) of thing class ids."""
        lut = np.zeros(max(self.thing_classes) + 1, dtype=np.int64)
        lut[list(self.thing_classes)] = np.arange(1, len(self.thing_classes) + 1)
        return lut[class_ids]


def empty_instances(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((0, *shape), dtype=np.uint8), np.zeros(0, dtype=np.int64)


def keep_instances(
    masks: Sequence[np.ndarray], classes: Sequence[int], spec: InstanceSpec, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Stacked uint8 masks and class ids of the instances of thing classes with >= min_area."""
    kept = [
        (m, c)
        for m, c in zip(masks, classes, strict=True)
        if c in spec.thing_classes and int(m.sum()) >= spec.min_area
    ]
    if not kept:
        return empty_instances(shape)
    return (
        np.stack([m.astype(np.uint8) for m, _ in kept]),
        np.array([c for _, c in kept], dtype=np.int64),
    )


def connected_instances(mask: np.ndarray, spec: InstanceSpec) -> tuple[np.ndarray, np.ndarray]:
    """One instance per 8-connected component of each thing class in a class mask."""
    masks, classes = [], []
    present = np.intersect1d(np.unique(mask), spec.thing_classes)  # CCP: 56 things, ~8 present
    for class_id in present.tolist():
        components, count = ndimage.label(mask == class_id, structure=_EIGHT_CONNECTED)
        for k in range(1, count + 1):
            masks.append(components == k)
            classes.append(class_id)
    return keep_instances(masks, classes, spec, mask.shape)
