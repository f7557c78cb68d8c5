"""A model's output on one image at the image's own size: the step predict.py and the logged
MLflow model share, so both give the same mask for the same image.

The image is shown to the model as validation shows it (`ValidationView`), run at the
precision plugin's precision, and the output mapped back through the view's `Placement`.
`task` is any seglab task (duck-typed: `infer`/`detect`, `device`, `infer_settings`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from pytorch_lightning.plugins.precision import Precision
from torch import Tensor

from seglab.inference.view import ValidationView


@torch.no_grad()
def predict_logits(
    task: Any, image: np.ndarray, view: ValidationView, plugin: Precision
) -> tuple[Tensor, str]:
    """K×H×W float32 logits at the image's own size, and the inference mode used ("whole" or
    "slide"): the image as validation sees it, through the task's inference settings, at the
    plugin's precision (the map back to the image's size in float32, outside it)."""
    canvas, placement = view(image)
    with plugin.forward_context():
        logits = task.infer(plugin.convert_input(canvas[None].to(task.device)))[0].float()
    mode = "slide" if task.infer_settings.slides(*canvas.shape[-2:]) else "whole"
    return placement.to_source(logits), mode


@torch.no_grad()
def detect_at_source(
    task: Any, image: np.ndarray, view: ValidationView, plugin: Precision
) -> dict[str, Tensor]:
    """The task's detections on the image as validation sees it, mapped back to the image:
    masks [N,H,W] resized, boxes moved and scaled (float32, CPU)."""
    canvas, placement = view(image)
    with plugin.forward_context():
        (found,) = task.detect([plugin.convert_input(canvas.to(task.device))])
    masks = found["masks"].float().cpu()
    if len(masks):
        masks = placement.to_source(masks)
    height, width = placement.source
    scale = torch.tensor(
        [width / placement.width, height / placement.height] * 2, dtype=torch.float32
    )
    offset = torch.tensor([placement.left, placement.top] * 2, dtype=torch.float32)
    boxes = (found["boxes"].float().cpu() - offset) * scale
    return {
        "boxes": boxes,
        "classes": found["classes"].cpu(),
        "scores": found["scores"].float().cpu(),
        "masks": masks.reshape(-1, height, width),
    }
