"""A stand-in network for tests about the pipeline rather than the network.

As torchgeo's trainer tests do: sweeps, DDP, resume and tracking tests need a model that trains,
validates, checkpoints and reloads through the real configs, not an smp encoder-decoder whose
forward pass would dominate their time. The real networks are tested where they are the point
(test_architectures_e2e, test_train_e2e's learning check, the Mask R-CNN tests).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

# `python train.py ... <this>` builds it in place of the model config's network; the config's
# other keys (arch, encoder, ...) stay, so run names and params read as for the real model.
STUB_NET = ["model._target_=tests.stub_net.TinySegNet"]


class TinySegNet(nn.Module):
    """Two convolutions: image (N, C, H, W) → logits (N, num_classes, H, W), any H and W."""

    def __init__(self, in_channels: int = 3, num_classes: int = 2, **unused: Any) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, 8, kernel_size=3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(inplace=True),
            nn.Conv2d(8, num_classes, kernel_size=1),
        )

    def forward(self, images: Tensor) -> Tensor:
        return self.body(images)
