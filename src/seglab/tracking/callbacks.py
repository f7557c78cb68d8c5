"""Lightning callback that puts images and the best checkpoint into the MLflow run."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from seglab.checkpoint_io import wait_for_checkpoints
from seglab.tasks.base import SegmentationTask
from seglab.tracking.logger import SeglabMLFlowLogger, find_mlflow_logger
from seglab.tracking.plots import save_confusion_matrix, save_instance_grid, save_overlay_grid
from seglab.visualize import denormalize


class MLflowArtifacts(pl.Callback):
    """Confusion matrix + prediction overlays every N val epochs, best checkpoint at the end.

    Each refresh replaces the latest PNG under `plots/` and adds a step (the epoch) to the
    run's image series `val_overlays` and `confusion_matrix`, which the UI shows on a slider.

    Works through the task interface (`SegmentationTask`): overlays draw the task's
    `instance_overlays` (each instance in its own colour with class and score) when it has
    them, else its `class_maps`.

    Overlays use a fixed, evenly spaced set of val images so that successive refreshes show
    the same scenes. Rank 0 only; nothing runs during the sanity check.
    """

    def __init__(
        self, num_overlay_images: int = 6, every_n_epochs: int = 1, instance_min_score: float = 0.5
    ) -> None:
        self.num_overlay_images = num_overlay_images
        self.every_n_epochs = max(1, every_n_epochs)
        self.instance_min_score = instance_min_score

    def on_validation_end(self, trainer: pl.Trainer, pl_module: SegmentationTask) -> None:
        logger = find_mlflow_logger(trainer)
        if logger is None or trainer.sanity_checking or not trainer.is_global_zero:
            return
        last_epoch = trainer.current_epoch + 1 >= (trainer.max_epochs or 0)
        if trainer.current_epoch % self.every_n_epochs and not last_epoch:
            return
        self.log_images(trainer, pl_module, logger)

    def log_images(
        self, trainer: pl.Trainer, pl_module: SegmentationTask, logger: SeglabMLFlowLogger
    ) -> None:
        data = pl_module.hparams["data"]
        with tempfile.TemporaryDirectory() as tmp:
            matrix = pl_module.last_confusion("val")
            if matrix is not None:
                path = save_confusion_matrix(
                    matrix.numpy(), data["class_names"], Path(tmp) / "confusion_matrix.png"
                )
                logger.log_artifact(str(path), "plots")
                logger.log_image_step(str(path), "confusion_matrix", trainer.current_epoch)
            dataset = (
                getattr(trainer.datamodule, "val_dataset", None) if trainer.datamodule else None
            )
            if dataset is not None and len(dataset) and self.num_overlay_images:
                count = min(self.num_overlay_images, len(dataset))
                indices = np.linspace(0, len(dataset) - 1, count).round().astype(int)
                samples = [dataset[int(i)] for i in indices]
                was_training = pl_module.training
                pl_module.eval()
                with torch.no_grad():
                    path = self._grid(pl_module, samples, data, Path(tmp) / "val_overlays.png")
                pl_module.train(was_training)
                logger.log_artifact(str(path), "plots")
                logger.log_image_step(str(path), "val_overlays", trainer.current_epoch)

    @staticmethod
    def _rgb(sample: dict[str, Any], data: dict[str, Any]) -> np.ndarray:
        return denormalize(sample["image"].numpy(), data["mean"], data["std"])

    def _grid(
        self, task: SegmentationTask, samples: list[dict], data: dict[str, Any], path: Path
    ) -> Path:
        rgb = [self._rgb(s, data) for s in samples]
        instances = task.instance_overlays(samples, self.instance_min_score)
        if instances is not None:  # each instance in its own colour, captioned
            truths, drawn = instances
            return save_instance_grid(rgb, truths, drawn, path)
        # Through the task's inference settings: whole val tiles may need the sliding window.
        preds = [m.cpu().numpy() for m in task.class_maps([s["image"] for s in samples])]
        truths = [s["mask"].numpy() for s in samples]
        return save_overlay_grid(rgb, truths, preds, data["palette"], data["ignore_index"], path)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        logger = find_mlflow_logger(trainer)
        ckpt = trainer.checkpoint_callback
        if logger is None or not trainer.is_global_zero or ckpt is None:
            return
        best = getattr(ckpt, "best_model_path", "")
        if best:
            wait_for_checkpoints(trainer, best)  # it may still be being written
        if best and Path(best).is_file():
            logger.log_artifact(best, "checkpoints")
