"""LightningModule for instance segmentation (torchvision Mask R-CNN).

Scored twice, so one MLflow chart compares it with the semantic models: mask mAP/mAP50/mAP75
(torchmetrics, COCO protocol) over the instances, and the semantic metrics (val/mIoU, per class
IoU/F1/Acc, the dataset's grouped metrics) over the class map its instances paint.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics.aggregation import SumMetric
from torchmetrics.detection import MeanAveragePrecision

from seglab.data.instances import TARGET_KEY, InstanceSpec
from seglab.metrics import ConfusionMatrix
from seglab.metrics.epoch_mean import log_epoch_mean
from seglab.metrics.grouped import GROUP_KEY, update_grouped_metrics
from seglab.models import build_model
from seglab.tasks.base import SegmentationTask

# torchmetrics result key → seglab metric name (val/mAP, val/mAP50, val/mAP75)
MAP_METRICS = {"map": "mAP", "map_50": "mAP50", "map_75": "mAP75"}


def paste_instances(
    prediction: dict[str, Tensor],
    class_of_label: Tensor,
    shape: tuple[int, int],
    fill: int,
    threshold: float = 0.5,
) -> Tensor:
    """A class map [H,W] from one image's detections: each instance's pixels (mask probability
    above `threshold`) get its class, the highest score winning where instances overlap;
    uncovered pixels get `fill`."""
    out = torch.full(shape, fill, dtype=torch.long, device=class_of_label.device)
    for i in prediction["scores"].argsort().tolist():  # ascending: the best is painted last
        out[prediction["masks"][i, 0] > threshold] = class_of_label[prediction["labels"][i]]
    return out


class InstanceSegmentationTask(SegmentationTask):
    """Mask R-CNN trained on its own losses (RPN, box, mask): no `loss`, no logits; predict.py
    writes its instances (`detect`), export.py scripts its `net` (TorchScript).

    `data.instance.thing_classes` are the detector's classes; `data.instance.background_class`
    is what the pasted class map gives uncovered pixels (null on data without a background
    class: they count as misses of their label, see ConfusionMatrix).
    """

    targets = "instances"
    uses_loss = False
    predictable = True  # instances JSON (COCO results), overlay and pasted class map
    exportable = True  # TorchScript only (seglab.export.ExportableDetector)
    predicts_instances = True
    refusal_hint = "Score it with eval.py (mask mAP and the semantic metrics)."

    def __init__(
        self,
        model: dict[str, Any],
        optim: dict[str, Any],
        scheduler: dict[str, Any],
        data: dict[str, Any],
        infer: dict[str, Any] | None = None,
        loss: dict[str, Any] | None = None,  # checkpoints before uses_loss recorded one
    ) -> None:
        instance = dict(data.get("instance") or {})
        background = instance.get("background_class")
        super().__init__(model, loss, optim, scheduler, data, infer, unassigned=background is None)
        self.spec = InstanceSpec.from_config(instance, self.num_classes)
        self.fill = int(background) if background is not None else self.num_classes
        self.mask_threshold = float(model.get("mask_threshold", 0.5))
        self.net = build_model(model)
        # Detector label → class id (label 0, torchvision's background, never comes out).
        labels = torch.tensor([self.fill, *self.spec.thing_classes], dtype=torch.long)
        self.register_buffer("class_of_label", labels, persistent=False)
        self.val_map = MeanAveragePrecision(iou_type="segm")
        self.test_map = MeanAveragePrecision(iou_type="segm")
        # True instances seen in the epoch: with some but no detection at all, torchmetrics
        # reports -1 (undefined), where COCO's AP is 0.
        self.val_instances = SumMetric()
        self.test_instances = SumMetric()

    def forward(self, images: list[Tensor] | Tensor) -> list[dict[str, Tensor]]:
        """Detections per image (eval mode): boxes, labels, scores, masks [N,1,H,W] in [0, 1]."""
        return self.net(list(images))

    def detect(self, images: Sequence[Tensor]) -> list[dict[str, Tensor]]:
        """Detections per image with their dataset class ids (`classes`), masks [N,H,W]."""
        found = self([image.to(self.device) for image in images])
        return [
            {
                "boxes": p["boxes"],
                "classes": self.class_of_label[p["labels"]],
                "scores": p["scores"],
                "masks": p["masks"][:, 0],
            }
            for p in found
        ]

    def class_maps(self, images: Sequence[Tensor]) -> list[Tensor]:
        """The pasted class map of each image's detections."""
        return self._pasted(self([image.to(self.device) for image in images]), images)

    def instance_overlays(
        self, samples: Sequence[dict[str, Any]], min_score: float
    ) -> tuple[list[tuple[Any, list[str]]], list[tuple[Any, list[str]]]]:
        """Truth instances captioned with their class, detections with class and score."""
        names = self.class_names
        preds = self([s["image"].to(self.device) for s in samples])

        def name(label: Any) -> str:
            return names[int(self.class_of_label[int(label)])]

        truths, drawn = [], []
        for sample, pred in zip(samples, preds, strict=True):
            target = sample[TARGET_KEY]
            truths.append((target["masks"].bool().numpy(), [name(x) for x in target["labels"]]))
            keep = pred["scores"] >= min_score
            masks = (pred["masks"][keep, 0] > self.mask_threshold).cpu().numpy()
            scores = pred["scores"][keep].tolist()
            captions = [
                f"{name(label)} {score:.2f}"
                for label, score in zip(pred["labels"][keep], scores, strict=True)
            ]
            drawn.append((masks, captions))
        return truths, drawn

    def _pasted(self, predictions: list[dict[str, Tensor]], images: Any) -> list[Tensor]:
        """The pasted class map of each image's detections, at the image's size."""
        return [
            paste_instances(
                p, self.class_of_label, image.shape[-2:], self.fill, self.mask_threshold
            )
            for p, image in zip(predictions, images, strict=True)
        ]

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        losses = self.net(list(batch["image"]), batch[TARGET_KEY])
        loss = sum(losses.values())
        bs = len(batch["image"])
        log_epoch_mean(self, "train/loss", loss, bs)
        self.log_step_loss(loss, bs)
        # Mask R-CNN's parts: loss_classifier, loss_box_reg, loss_mask, loss_objectness, ...
        for name, part in losses.items():
            log_epoch_mean(self, f"train/{name}", part, bs)
        return loss

    def _eval_step(
        self,
        batch: dict[str, Any],
        matrix: ConfusionMatrix,
        mean_ap: MeanAveragePrecision,
        instances: SumMetric,
    ) -> None:
        predictions = self(batch["image"])
        instances.update(sum(len(t["labels"]) for t in batch[TARGET_KEY]))
        mean_ap.update(
            [
                {
                    "masks": p["masks"][:, 0] > self.mask_threshold,
                    "scores": p["scores"],
                    "labels": p["labels"],
                }
                for p in predictions
            ],
            [{"masks": t["masks"].bool(), "labels": t["labels"]} for t in batch[TARGET_KEY]],
        )
        for i, class_map in enumerate(self._pasted(predictions, batch["image"])):
            one = {"mask": batch["mask"][i][None]}  # masks may be a list (images of any size)
            if GROUP_KEY in batch:
                one[GROUP_KEY] = batch[GROUP_KEY][i : i + 1]
            matrix.update(class_map[None], one["mask"])
            update_grouped_metrics(self.grouped_metrics, class_map[None], one)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, self.val_matrix, self.val_map, self.val_instances)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, self.test_matrix, self.test_map, self.test_instances)

    def _log_map(self, stage: str, mean_ap: MeanAveragePrecision, instances: SumMetric) -> None:
        result = mean_ap.compute()  # gathered over ranks
        seen = float(instances.compute())
        mean_ap.reset()
        instances.reset()
        values = {f"{stage}/{name}": float(result[key]) for key, name in MAP_METRICS.items()}
        if seen > 0:  # -1 here only means "no detection": nothing was found, AP 0
            values = {k: max(v, 0.0) for k, v in values.items()}
        # Without any true instance mAP is undefined: a gap in the curve, not a fake number.
        defined = {k: v for k, v in values.items() if math.isfinite(v) and v >= 0}
        self.log_dict(defined, prog_bar=True, sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        self._log_map("val", self.val_map, self.val_instances)

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        self._log_map("test", self.test_map, self.test_instances)
