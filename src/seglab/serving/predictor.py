"""The logged model's inference: image arrays in, predict.py's masks (or instances) out.

Everything is seglab's own: the weights open with `read_checkpoint` (weights_only=True), the
task is rebuilt by `load_task`, each image goes through `ValidationView` and
`predict_logits`/`detect_at_source` at the checkpoint's precision, as in predict.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seglab.errors import SeglabError
from seglab.inference.at_source import detect_at_source, predict_logits
from seglab.inference.precision import precision_plugin
from seglab.inference.view import ValidationView
from seglab.tasks.checkpoint import checkpoint_precision, load_task, read_checkpoint

# predict.py's default inference (conf/predict.yaml: infer=auto over conf/infer/whole.yaml's
# defaults, which are InferSettings' own): windows only for images far larger than training's.
PREDICT_INFER = {"mode": "auto"}
# predict.py's default `score_thresh`: instances scoring below it are left out.
DEFAULT_SCORE_THRESH = 0.5


class ImagePredictor:
    """A seglab checkpoint ready to predict on uint8 image arrays."""

    def __init__(self, weights: str | Path, device: str | None = None) -> None:
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        ckpt = read_checkpoint(weights)
        task = load_task(weights, map_location=device, infer=PREDICT_INFER, ckpt=ckpt)
        self.plugin = precision_plugin(checkpoint_precision(ckpt, device), device)
        self.task = self.plugin.convert_module(task)
        self.data: Mapping[str, Any] = task.hparams["data"]
        self.channels = int(self.data.get("in_channels", 3))
        self.view = ValidationView.from_data_config(self.data)
        self.mask_threshold = float(task.hparams["model"].get("mask_threshold", 0.5))

    @property
    def predicts_instances(self) -> bool:
        return bool(self.task.predicts_instances)

    def images(self, batch: Any) -> tuple[list[np.ndarray], bool]:
        """The images of `batch` (H×W×C, B×H×W×C, or a list of H×W×C) as uint8 H×W×C arrays,
        and whether it was a single image. Anything else is refused naming what was expected."""
        expected = f"uint8 images H×W×{self.channels} (one, or a batch B×H×W×{self.channels})"
        if isinstance(batch, Sequence) and not isinstance(batch, str | bytes):
            items = [np.asarray(item) for item in batch]
            if items and all(item.ndim == 3 for item in items):
                return [self._checked(item, expected) for item in items], False
            batch = np.asarray(batch)
        array = np.asarray(batch)
        if array.dtype == object:  # nested lists from a JSON request
            array = np.asarray(array.tolist())
        if array.ndim == 2 and self.channels == 1:
            array = array[..., None]
        if array.ndim == 3:
            return [self._checked(array, expected)], True
        if array.ndim == 4:
            return [self._checked(image, expected) for image in array], False
        raise SeglabError(f"model input of shape {array.shape}; expected {expected}")

    def _checked(self, image: np.ndarray, expected: str) -> np.ndarray:
        if image.ndim != 3 or image.shape[-1] != self.channels:
            raise SeglabError(f"model input image of shape {image.shape}; expected {expected}")
        if image.dtype != np.uint8:
            if (
                np.issubdtype(image.dtype, np.number)
                and image.size
                and (image.min() < 0 or image.max() > 255 or not np.all(np.mod(image, 1) == 0))
            ):
                raise SeglabError(f"model input of dtype {image.dtype} outside 0–255; {expected}")
            image = image.astype(np.uint8)
        return np.ascontiguousarray(image)

    def mask(self, image: np.ndarray) -> np.ndarray:
        """H×W uint8 class ids: what predict.py writes as `<stem>_mask.png`."""
        logits, _ = predict_logits(self.task, image, self.view, self.plugin)
        return logits.argmax(dim=0).to(torch.uint8).cpu().numpy()

    def instances(self, image: np.ndarray, score_thresh: float) -> dict[str, np.ndarray]:
        """The instances predict.py writes to `<stem>_instances.json`: boxes [N,4] xyxy,
        labels [N] (dataset class ids), scores [N], masks [N,H,W] uint8 (0/1)."""
        found = detect_at_source(self.task, image, self.view, self.plugin)
        keep = found["scores"] >= score_thresh
        return {
            "boxes": found["boxes"][keep].numpy(),
            "labels": found["classes"][keep].numpy().astype(np.int64),
            "scores": found["scores"][keep].numpy(),
            "masks": (found["masks"][keep] > self.mask_threshold).numpy().astype(np.uint8),
        }

    def __call__(self, batch: Any, score_thresh: float = DEFAULT_SCORE_THRESH) -> Any:
        """Masks (H×W for one image, B×H×W for a batch of one size, else a list), or for an
        instance model one dict of instances per image (a list for a batch)."""
        images, single = self.images(batch)
        if self.predicts_instances:
            found = [self.instances(image, score_thresh) for image in images]
            return found[0] if single else found
        masks = [self.mask(image) for image in images]
        if single:
            return masks[0]
        same_size = len({m.shape for m in masks}) == 1
        return np.stack(masks) if same_size else masks
