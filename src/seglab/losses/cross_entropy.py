"""Pixel cross-entropy with class weights as a buffer and a finite value on all-ignored batches."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CrossEntropyLoss(nn.Module):
    """Mean cross-entropy over non-ignored pixels; logits [B, C, H, W], target long [B, H, W].

    Unlike `F.cross_entropy(reduction="mean")`, a batch whose pixels are all ignored gives 0
    (with a zero gradient) instead of NaN, so one empty crop cannot poison the weights.
    """

    class_weights: torch.Tensor | None

    def __init__(
        self,
        ignore_index: int = 255,
        class_weights: list[float] | None = None,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"loss.label_smoothing must be in [0, 1], got {label_smoothing}")
        self.ignore_index = ignore_index
        self.label_smoothing = float(label_smoothing)
        weights = None
        if class_weights is not None:
            weights = torch.as_tensor([float(w) for w in class_weights], dtype=torch.float32)
            if (weights < 0).any() or not torch.isfinite(weights).all():
                raise ValueError(f"loss.class_weights must be finite and >= 0, got {class_weights}")
        # A buffer follows .to(device) and is saved with the checkpoint.
        self.register_buffer("class_weights", weights)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Weighted mean, normalised like PyTorch: by the summed weight of the valid pixels' labels."""
        weight = self.class_weights
        if weight is not None:
            if weight.numel() != logits.size(1):
                raise ValueError(
                    f"loss.class_weights has {weight.numel()} entries but the model predicts "
                    f"{logits.size(1)} classes; give one weight per class"
                )
            weight = weight.to(dtype=logits.dtype)
        per_pixel = F.cross_entropy(
            logits,
            target,
            weight=weight,
            ignore_index=self.ignore_index,
            reduction="none",
            label_smoothing=self.label_smoothing,
        )
        valid = target != self.ignore_index
        if weight is None:
            norm = valid.sum().to(per_pixel.dtype)
        else:
            norm = weight[target.clamp(0, weight.numel() - 1)].mul(valid).sum()
        # Ignored pixels contribute exactly 0 to the sum, so 0 / tiny is 0, not NaN.
        return per_pixel.sum() / norm.clamp_min(torch.finfo(per_pixel.dtype).tiny)
