"""Boundary-aware losses: Kervadec's boundary loss and Karimi & Salcudean's Hausdorff DT loss.

Both are used beside a region loss (CE or Dice: `loss=ce_boundary`, `loss=dice_boundary`,
`loss=dice_hausdorff`), which gives the early gradient; alone they start badly from a random
network. Ignored pixels take no part: they are left out of the sums and belong to no class when
the distance maps are computed, so the prediction there changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from seglab.losses.distance import class_masks, distance_maps


def _class_index(classes: Sequence[int] | None, num_classes: int) -> list[int]:
    chosen = list(range(num_classes)) if classes is None else [int(c) for c in classes]
    bad = [c for c in chosen if not 0 <= c < num_classes]
    if bad or not chosen:
        raise ValueError(
            f"loss classes={list(classes or [])}: expected class ids in 0..{num_classes - 1}"
        )
    return chosen


class BoundaryLoss(nn.Module):
    """Softmax probabilities integrated against each class's signed distance map.

    loss = mean over valid pixels x and classes k of s_k(x) · φ_k(x), where φ_k is negative
    inside class k's ground truth (−(distance to its edge − 1)), positive outside (distance to
    it) and 0 for a class absent from the image. A prediction equal to the ground truth reaches
    the minimum; each pixel predicted into a class costs its distance from that class.

    Args:
        ignore_index: label of pixels left out.
        classes: the class ids integrated (null: all; Kervadec et al. use the foreground only).

    Shape: logits [B, K, H, W], target long [B, H, W]; a scalar.

    Reference: Kervadec et al., "Boundary loss for highly unbalanced segmentation", MIDL 2019.
    """

    def __init__(self, ignore_index: int = 255, classes: Sequence[int] | None = None) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.classes = None if classes is None else [int(c) for c in classes]

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        num_classes = logits.size(1)
        index = _class_index(self.classes, num_classes)
        probs = torch.softmax(logits.float(), dim=1)[:, index]
        phi = distance_maps(class_masks(target, num_classes)[:, index], True, probs)
        valid = (target != self.ignore_index).unsqueeze(1).to(probs.dtype)
        total = (probs * phi * valid).sum()
        return total / (valid.sum() * len(index)).clamp_min(1.0)


class HausdorffDTLoss(nn.Module):
    """Hausdorff distance loss, distance-transform form (one-vs-rest over classes).

    loss = mean over valid pixels and classes of (s_k − g_k)² · (d_g^α + d_s^α), where d_g is
    the distance of each pixel to the edge of class k's ground truth and d_s to the edge of the
    predicted region (s_k > 0.5, recomputed each step, no gradient). Errors far from either
    edge cost most, as in the Hausdorff distance.

    Args:
        ignore_index: label of pixels left out.
        alpha: exponent of the distances (2 in the paper).
        classes: the class ids scored (null: all).

    Shape: logits [B, K, H, W], target long [B, H, W]; a scalar.

    Reference: Karimi & Salcudean, "Reducing the Hausdorff Distance in Medical Image
    Segmentation with Convolutional Neural Networks", IEEE TMI 2019.
    """

    def __init__(
        self, ignore_index: int = 255, alpha: float = 2.0, classes: Sequence[int] | None = None
    ) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.alpha = float(alpha)
        self.classes = None if classes is None else [int(c) for c in classes]

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        num_classes = logits.size(1)
        index = _class_index(self.classes, num_classes)
        probs = torch.softmax(logits.float(), dim=1)[:, index]
        truth = class_masks(target, num_classes)[:, index]
        valid = target != self.ignore_index
        # The predicted regions at valid pixels only: what is predicted where labels are
        # ignored must not move the edges.
        predicted = ((probs.detach() > 0.5) & valid.unsqueeze(1)).cpu().numpy()
        weight = distance_maps(truth, False, probs) ** self.alpha
        weight = weight + distance_maps(predicted, False, probs) ** self.alpha
        truth_t = torch.from_numpy(truth).to(probs)
        mask = valid.unsqueeze(1).to(probs.dtype)
        total = ((probs - truth_t) ** 2 * weight * mask).sum()
        return total / (mask.sum() * len(index)).clamp_min(1.0)
