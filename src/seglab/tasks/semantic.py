"""LightningModule for semantic segmentation: loss per step, one confusion matrix per epoch."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import hydra.utils
import torch
import torch.nn.functional as F
from torch import Tensor

from seglab.errors import ConfigError
from seglab.inference import InferSettings, infer_logits
from seglab.inference.padding import OUTPUT_STRIDE, pad_to_stride
from seglab.metrics import ConfusionMatrix, class_ids
from seglab.metrics.epoch_mean import log_epoch_mean
from seglab.metrics.grouped import update_grouped_metrics
from seglab.models import build_model
from seglab.tasks.base import SegmentationTask


class SemanticSegmentationTask(SegmentationTask):
    """An smp or torchvision network trained with a pixel loss (plus its auxiliary head's, when
    model.aux_loss gives it a weight); validation through `infer` (whole/slide/TTA)."""

    predictable = True
    exportable = True

    def __init__(
        self,
        model: dict[str, Any],
        loss: dict[str, Any],
        optim: dict[str, Any],
        scheduler: dict[str, Any],
        data: dict[str, Any],
        infer: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(model, loss, optim, scheduler, data, infer)
        self.net = build_model(model)
        # NHWC convolutions: ~15-25% faster on CPU (oneDNN) and what tensor cores want under AMP.
        self.memory_format = (
            torch.channels_last if model.get("channels_last", True) else torch.contiguous_format
        )
        self.net.to(memory_format=self.memory_format)
        self.criterion = hydra.utils.instantiate(loss, _convert_="all")
        # The auxiliary head's loss weight (torchvision's FCN/DeepLabV3), 0 without one.
        self.aux_weight = float(model.get("aux_loss") or 0.0)
        if self.aux_weight > 0 and not getattr(self.net, "has_aux", False):
            raise ConfigError(f"model.aux_loss={self.aux_weight}: this network has no aux head")
        self.set_inference(infer)

    def set_inference(self, infer: dict[str, Any] | None) -> None:
        """How validation/test turn images into logits (conf/infer; None: whole image)."""
        self._infer_settings = InferSettings.from_config(infer, self.hparams["data"])

    @property
    def infer_settings(self) -> InferSettings:
        return self._infer_settings

    def infer(self, images: Tensor) -> Tensor:
        """Logits for evaluation and prediction: whole image, sliding window and/or TTA."""
        return infer_logits(self, images, self.num_classes, self.infer_settings)

    def class_maps(self, images: Sequence[Tensor]) -> list[Tensor]:
        """The argmax of `infer` per image: images of one size go through together, in batches
        of at most the validation batch size (what validation already fits in memory)."""
        data = self.hparams["data"]
        batch_size = int(data.get("val_batch_size") or data.get("batch_size") or 1)
        by_size: dict[tuple[int, ...], list[int]] = {}
        for index, image in enumerate(images):
            by_size.setdefault(tuple(image.shape), []).append(index)
        maps: dict[int, Tensor] = {}
        for indices in by_size.values():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                batch = torch.stack([images[i] for i in chunk]).to(self.device)
                maps.update(zip(chunk, class_ids(self.infer(batch)), strict=True))
        return [maps[i] for i in range(len(images))]

    def forward(self, image: Tensor) -> Tensor:
        """Logits at the input's resolution, for any input size.

        smp encoders need sides divisible by their output stride (32), so the input is padded
        (`pad_to_stride`, the exported model's padding too) and the logits cropped back.
        """
        return self._outputs(image, aux=False)[0]

    def _outputs(self, image: Tensor, aux: bool) -> list[Tensor]:
        """The logits, and with `aux` those of the network's auxiliary head (torchvision's FCN
        and DeepLabV3 with model.aux_loss), each at the input's resolution."""
        height, width = image.shape[-2:]
        if height % OUTPUT_STRIDE or width % OUTPUT_STRIDE:  # training crops: no copy at all
            image = pad_to_stride(image)
        image = image.contiguous(memory_format=self.memory_format)
        outputs = list(self.net.forward_with_aux(image)) if aux else [self.net(image)]
        resized = []
        for logits in outputs:
            if logits.shape[-2:] != image.shape[-2:]:
                logits = F.interpolate(
                    logits, size=image.shape[-2:], mode="bilinear", align_corners=False
                )
            resized.append(logits[..., :height, :width])
        return resized

    def _logits_and_loss(
        self, batch: dict[str, Tensor], infer: bool = False
    ) -> tuple[Tensor, Tensor]:
        mask = batch["mask"]
        if infer:
            outputs = [self.infer(batch["image"])]
        else:
            outputs = self._outputs(batch["image"], aux=self.aux_weight > 0)
        outputs = [
            F.interpolate(logits, size=mask.shape[-2:], mode="bilinear", align_corners=False)
            if logits.shape[-2:] != mask.shape[-2:]
            else logits
            for logits in outputs
        ]
        losses = [self.criterion(logits, mask) for logits in outputs]
        loss = losses[0]
        if len(losses) > 1:  # torchvision's recipe: out loss + aux_loss × aux loss
            bs = mask.shape[0]
            self.log("train/loss_aux", losses[1].detach(), on_epoch=True, batch_size=bs)
            loss = loss + self.aux_weight * losses[1]
        return outputs[0], loss

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """Losses with scheduled term weights (a `ramp`) follow the share of training done;
        from the global step, so a resumed run continues the schedule where it stopped."""
        if hasattr(self.criterion, "set_progress"):
            total = float(self.trainer.estimated_stepping_batches)
            last = total - 1  # the last step is at progress 1
            done = self.global_step / last if math.isfinite(total) and last > 0 else 1.0
            self.criterion.set_progress(done)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        _, loss = self._logits_and_loss(batch)
        bs = batch["image"].shape[0]
        for name, weight in getattr(self.criterion, "ramped_weights", dict)().items():
            self.log(f"train/loss_weight/{name}", weight, on_step=True, on_epoch=False)
        # Exact names: `train/loss` is the epoch mean, `train/loss_step` the per-step curve.
        log_epoch_mean(self, "train/loss", loss, bs)
        self.log_step_loss(loss, bs)
        return loss

    def _eval_step(self, batch: dict[str, Tensor], stage: str, matrix: ConfusionMatrix) -> None:
        logits, loss = self._logits_and_loss(batch, infer=True)
        preds = class_ids(logits)
        matrix.update(preds, batch["mask"])
        update_grouped_metrics(self.grouped_metrics, preds, batch)
        log_epoch_mean(self, f"{stage}/loss", loss, batch["image"].shape[0])

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "val", self.val_matrix)

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "test", self.test_matrix)
