"""What every segmentation task shares: class metadata, the epoch's confusion matrix and its
scores, the dataset's grouped metrics, optimiser and schedule; and the interface the rest of
seglab (tracking, eval.py, predict.py, export.py) calls on any task kind."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import hydra.utils
import pytorch_lightning as pl
import torch
from torch import Tensor

from seglab.compat import loggers_write_this_step
from seglab.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    normalization_table,
    normalize_uint8,
)
from seglab.inference import InferSettings
from seglab.metrics import ConfusionMatrix, segmentation_scores
from seglab.metrics.epoch_mean import EpochMeans
from seglab.metrics.grouped import build_grouped_metrics, compute_grouped_metrics
from seglab.optim import build_scheduler

# Checkpoint key: the Lightning precision the run trained and validated at (eval.py reuses it).
PRECISION_KEY = "seglab_precision"


class SegmentationTask(pl.LightningModule, ABC):
    """Built from plain config dicts, which are also the checkpoint's hparams.

    A checkpoint is therefore self-describing (`load_from_checkpoint(path)` rebuilds model, loss
    and class metadata) and loads with `torch.load(..., weights_only=True)`. Subclasses build
    the network and feed `val_matrix`/`test_matrix` and `grouped_metrics` in their steps; the
    scores logged from them (`val/mIoU`, `val/IoU/<class>`, ...) are the same for every task.

    The interface every task kind implements (a new kind: one module plus its entry in
    `seglab.tasks.TASKS`):

    - `class_maps(images)`: one class map per image (overlays; must be implemented);
    - `instance_overlays(samples, min_score)`: instances to draw, for kinds that detect them;
    - `set_inference(infer)` / `infer_settings`: how evaluation computes its predictions
      (conf/infer), for kinds that have such settings;
    - `last_confusion(stage)`: the confusion matrix of the last finished val/test epoch;
    - `targets`: what its data samples hold besides the image ("masks", or "instances" too);
    - `uses_loss`, `predictable`, `exportable` (asked through `handled_by(tool)`): whether the
      kind trains on `loss`, and whether predict.py / export.py handle its checkpoints (then it
      implements `infer`, or `detect` with `predicts_instances`, and export.py exports its `net`).
    """

    targets: ClassVar[str] = "masks"  # the datamodule's `targets`
    uses_loss: ClassVar[bool] = True  # False: `loss` is accepted (old checkpoints) but unused
    predictable: ClassVar[bool] = False  # predict.py writes its masks (needs `infer`)
    # predict.py writes its instances (needs `detect`) rather than per-class logits.
    predicts_instances: ClassVar[bool] = False
    exportable: ClassVar[bool] = False  # export.py exports `net` (normalised image → logits)
    # What the tools that refuse this kind suggest instead.
    refusal_hint: ClassVar[str] = "Score it with eval.py."

    @classmethod
    def handled_by(cls, tool: str) -> bool:
        """Whether `tool` ("predict.py", "export.py"; others: yes) handles this kind's checkpoints."""
        return {"predict.py": cls.predictable, "export.py": cls.exportable}.get(tool, True)

    def __init__(
        self,
        model: dict[str, Any],
        loss: dict[str, Any] | None,
        optim: dict[str, Any],
        scheduler: dict[str, Any],
        data: dict[str, Any],
        infer: dict[str, Any] | None = None,
        unassigned: bool = False,
    ) -> None:
        super().__init__()
        unused = [] if self.uses_loss else ["loss"]  # not kept in the kind's new checkpoints
        self.save_hyperparameters(logger=False, ignore=["unassigned", *unused])
        self.num_classes = int(data["num_classes"])
        self.ignore_index = int(data["ignore_index"])
        self.class_names = list(data["class_names"])
        # unassigned: predictions may leave pixels without a class (see ConfusionMatrix).
        self.val_matrix = ConfusionMatrix(self.num_classes, self.ignore_index, unassigned)
        self.test_matrix = ConfusionMatrix(self.num_classes, self.ignore_index, unassigned)
        # Per-case / per-city metrics declared by the dataset (data.extra_metrics), val and test.
        self.grouped_metrics = build_grouped_metrics(data.get("extra_metrics"), self.ignore_index)
        # Confusion matrix of the last finished validation/test epoch, for artifacts and summaries.
        self._last_confusion: dict[str, Tensor] = {}
        # Epoch means of per-batch losses ("train/loss", "val/loss", ...): a step adds its value
        # by `log_epoch_mean` (what `self.log(on_epoch=True)` logs, at a fraction of its cost).
        self.epoch_means = EpochMeans()
        # This training step's (loss, batch size) until on_train_batch_end logs it (not that hook's
        # `outputs["loss"]`: Lightning divides it by trainer.accumulate_grad_batches).
        self._step_loss: tuple[Tensor, int] | None = None
        # 8-bit images (training batches, data.normalize_on_device) → the network's floats.
        table = normalization_table(
            data.get("mean") or IMAGENET_MEAN,
            data.get("std") or IMAGENET_STD,
            float(data.get("max_pixel_value") or 255.0),
        )
        self.register_buffer("normalization", table, persistent=False)

    def transfer_batch_to_device(
        self, batch: Any, device: torch.device, dataloader_idx: int
    ) -> Any:
        """The batch on `device`, its 8-bit images normalised there by data.mean/std (to the
        floats a worker's Normalize gives); images already float pass as they are. Any loader
        gets this, the DataModule's or a user's own."""
        batch = super().transfer_batch_to_device(batch, device, dataloader_idx)
        if isinstance(batch, dict) and "image" in batch:
            batch["image"] = self.normalized(batch["image"])
        return batch

    def normalized(self, images: Any) -> Any:
        """uint8 images (a batch, or a list of images) normalised; anything else unchanged."""
        if isinstance(images, list | tuple):
            return [self.normalized(image) for image in images]
        if not isinstance(images, Tensor) or images.dtype != torch.uint8:
            return images
        return normalize_uint8(images, self.normalization.to(images.device))

    @abstractmethod
    def class_maps(self, images: Sequence[Tensor]) -> list[Tensor]:
        """One class map [H,W] (class ids) per image [C,H,W], at the image's size, predicted as
        evaluation predicts (the inference settings apply). Call in eval mode, without grad."""

    def instance_overlays(
        self, samples: Sequence[dict[str, Any]], min_score: float
    ) -> tuple[list[tuple[Any, list[str]]], list[tuple[Any, list[str]]]] | None:
        """(truths, predictions) per sample, each as (masks [N,H,W] bool array, a caption per
        mask), predictions scoring below `min_score` left out; None (the default) for kinds that
        predict no instances, whose overlays show `class_maps` instead."""
        return None

    def set_inference(self, infer: dict[str, Any] | None) -> None:  # noqa: B027 - optional
        """Set how evaluation computes predictions (conf/infer). Default: the kind has no such
        settings and ignores them."""

    @property
    def infer_settings(self) -> InferSettings | None:
        """The inference settings in use (`seglab.inference.InferSettings`), None by default."""
        return None

    def infer(self, images: Tensor) -> Tensor:
        """Per-class logits [N,K,H,W] as evaluation computes them; predictable kinds only."""
        raise NotImplementedError(f"{type(self).__name__} computes no logits for predict.py")

    def detect(self, images: Sequence[Tensor]) -> list[dict[str, Tensor]]:
        """Instances per image [C,H,W] (`boxes` [N,4] xyxy, `classes` [N] class ids, `scores`
        [N], `masks` [N,H,W] probabilities); kinds that predict instances only."""
        raise NotImplementedError(f"{type(self).__name__} detects no instances")

    def last_confusion(self, stage: str) -> Tensor | None:
        """The confusion matrix (CPU, summed over ranks) of the last finished `stage` epoch
        ("val" or "test"), None before one finished."""
        return self._last_confusion.get(stage)

    def log_step_loss(self, loss: Tensor, batch_size: int) -> None:
        """Record this training step's loss for `train/loss_step`, the per-step curve, which
        `on_train_batch_end` hands to Lightning on the steps its loggers write."""
        self._step_loss = (loss.detach(), batch_size)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """`train/loss_step` logged only on the steps Lightning's loggers write (every
        `log_every_n_steps`, and when stopping): a `self.log` call costs ≈ 0.8 ms, 3 % of a
        25 ms step, and the values of the steps in between are dropped anyway. Here, after the
        callbacks' hooks, since one of them may stop the run (which makes the loggers write).
        Not `prog_bar`: Lightning would read it from the device after every step, a GPU wait at
        each step boundary; the progress bar (`seglab.callbacks.progress`) shows it instead."""
        step_loss, self._step_loss = self._step_loss, None
        if step_loss is not None and loggers_write_this_step(self.trainer):
            loss, batch_size = step_loss
            self.log("train/loss_step", loss, on_step=True, on_epoch=False, batch_size=batch_size)

    def _log_scores(self, stage: str, matrix: ConfusionMatrix) -> None:
        counts = matrix.compute()  # summed over ranks
        matrix.reset()
        self._last_confusion[stage] = counts.detach().cpu()
        scores = segmentation_scores(counts, self.class_names)
        # Classes absent from labels and predictions have no score: leave gaps, not fake zeros.
        finite = {f"{stage}/{k}": v for k, v in scores.items() if math.isfinite(v)}
        miou = finite.pop(f"{stage}/mIoU", None)
        # Already equal on every rank (the matrix was summed); sync_dist only keeps Lightning from
        # warning and guarantees ModelCheckpoint sees the same value everywhere.
        self.log_dict(finite, sync_dist=True)
        if miou is not None:
            self.log(f"{stage}/mIoU", miou, prog_bar=True, sync_dist=True)

    def _log_grouped(self, stage: str) -> None:
        # Validation and test never overlap, so they share the (self-resetting) grouped metrics.
        grouped = compute_grouped_metrics(self.grouped_metrics)
        self.log_dict({f"{stage}/{k}": v for k, v in grouped.items()}, sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        self._log_scores("val", self.val_matrix)
        self._log_grouped("val")

    def on_test_epoch_end(self) -> None:
        self._log_scores("test", self.test_matrix)
        self._log_grouped("test")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The logged val scores were computed at this precision; eval.py and predict.py default
        # to it, since bf16 and fp32 logits differ enough to flip near-tie pixels.
        checkpoint[PRECISION_KEY] = str(self.trainer.precision)

    def configure_optimizers(self) -> Any:
        optim_cfg = dict(self.hparams["optim"])
        params = [p for p in self.parameters() if p.requires_grad]  # frozen backbone layers
        optimizer = hydra.utils.instantiate(optim_cfg, params=params)
        scheduler = build_scheduler(
            optimizer, dict(self.hparams["scheduler"]), int(self.trainer.estimated_stepping_batches)
        )
        if scheduler is None:
            return optimizer
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1},
        }
