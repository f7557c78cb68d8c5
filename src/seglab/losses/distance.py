"""Distance maps of class masks, computed on the fly from each (augmented) target with scipy.

The boundary and Hausdorff losses weigh each pixel by its distance to a region's edge; the
targets change with every augmentation, so the maps cannot be precomputed with the data.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt
from torch import Tensor


def signed_distance(region: np.ndarray) -> np.ndarray:
    """Kervadec et al.'s signed distance of a bool mask: outside, the distance to the region;
    inside, minus (the distance to the outside - 1), so the region's edge pixels are 0.
    An empty region gives zeros (the class is absent: nothing to pull the prediction towards)."""
    if not region.any():
        return np.zeros(region.shape, dtype=np.float32)
    outside = ~region
    inside_dist = distance_transform_edt(region) if outside.any() else np.zeros(region.shape)
    dist = distance_transform_edt(outside) * outside - (inside_dist - 1) * region
    return dist.astype(np.float32)


def edge_distance(region: np.ndarray) -> np.ndarray:
    """Unsigned distance of every pixel to the region's edge (Karimi & Salcudean's DT: the
    distance transform of the region plus that of its complement); zeros for an empty region."""
    if not region.any() or region.all():
        return np.zeros(region.shape, dtype=np.float32)
    return (distance_transform_edt(region) + distance_transform_edt(~region)).astype(np.float32)


def class_masks(target: Tensor, num_classes: int) -> np.ndarray:
    """B×K×H×W bool masks of each class; ignored pixels (any label ≥ K) belong to none."""
    labels = target.detach().cpu().numpy()
    return labels[:, None] == np.arange(num_classes)[None, :, None, None]


def distance_maps(masks: np.ndarray, signed: bool, like: Tensor) -> Tensor:
    """B×K×H×W maps of B×K×H×W bool masks (signed: `signed_distance`, else `edge_distance`),
    as a tensor on `like`'s device and dtype."""
    transform = signed_distance if signed else edge_distance
    maps = np.zeros(masks.shape, dtype=np.float32)
    for b in range(masks.shape[0]):
        for k in range(masks.shape[1]):
            maps[b, k] = transform(masks[b, k])
    return torch.from_numpy(maps).to(device=like.device, dtype=like.dtype)
