"""Model factories. A model config names its task; the rest is passed to the factory."""

from __future__ import annotations

from typing import Any

import hydra.utils
from torch import nn

from seglab.models.mask_rcnn import build_mask_rcnn
from seglab.models.smp_models import build_smp_model
from seglab.models.torchvision_seg import TorchvisionSegmenter, build_torchvision_segmenter

# Keys of a model config that describe the model or are read by its task, not by its factory.
DESCRIPTIVE_KEYS = ("task", "name", "channels_last", "mask_threshold")


def build_model(model_cfg: dict[str, Any]) -> nn.Module:
    """Instantiate a model config (a plain dict or DictConfig) without its descriptive keys."""
    factory_cfg = {k: v for k, v in dict(model_cfg).items() if k not in DESCRIPTIVE_KEYS}
    return hydra.utils.instantiate(factory_cfg, _convert_="all")


__all__ = [
    "DESCRIPTIVE_KEYS",
    "TorchvisionSegmenter",
    "build_mask_rcnn",
    "build_model",
    "build_smp_model",
    "build_torchvision_segmenter",
]
