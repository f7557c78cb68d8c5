"""Make the checkpoints and the MLflow run tell the same story when a run does not end well.

- `FiniteLossGuard`: a NaN/Inf loss stops training *before* its backward pass, so the weights
  and the last checkpoint stay good, with an error naming the step.
- `RunGuard`: writes `last.ckpt` at every epoch boundary, *after* all of the finished epoch's
  metrics were logged (Lightning's own `save_last` writes it at validation end, before the
  epoch's train metrics, so a crash in between loses them for good). Metrics queued for MLflow
  are sent before any checkpoint is written, so a crash never loses a point that its checkpoint
  covers, and everything after the checkpoint is re-run and re-logged on `resume=`. Ctrl-C or
  SIGTERM saves `last.ckpt` and marks the run KILLED; any other failure marks it FAILED with the
  reason as the `seglab.failure` tag.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.utilities.exceptions import SIGTERMException
from rich.console import Console

from seglab.checkpoint_io import background_checkpoint_io
from seglab.compat import batch_index, mark_epoch_boundary
from seglab.errors import TrainingDivergedError
from seglab.tracking.logger import find_mlflow_logger
from seglab.tracking.secrets import redact_text

FAILURE_TAG = "seglab.failure"  # why the run ended FAILED or KILLED
MAX_TAG_LENGTH = 5000  # MLflow's tag value limit is 8000; keep the reason readable
console = Console(stderr=True)


def last_checkpoint_path(trainer: pl.Trainer) -> Path | None:
    """Where ModelCheckpoint keeps `last.ckpt` (None without a checkpoint callback)."""
    ckpt = trainer.checkpoint_callback
    if not isinstance(ckpt, ModelCheckpoint) or ckpt.dirpath is None:
        return None
    return Path(ckpt.dirpath) / f"{ckpt.CHECKPOINT_NAME_LAST}{ckpt.FILE_EXTENSION}"


class FiniteLossGuard(pl.Callback):
    """Stop at the first non-finite training loss, before it reaches the weights."""

    def on_before_backward(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor
    ) -> None:
        if bool(torch.isfinite(loss.detach()).all()):
            return
        last = last_checkpoint_path(trainer)
        kept = (
            f"the last good checkpoint is {last}"
            if last is not None and last.is_file()
            else "no checkpoint was written before it"
        )
        raise TrainingDivergedError(
            f"training loss became {loss.item()} at step {trainer.global_step} "
            f"(epoch {trainer.current_epoch}, batch {batch_index(trainer)}); "
            f"stopped before updating the weights, {kept}. Lower optim.lr, add "
            "trainer.gradient_clip_val=1.0, or try trainer.precision=32-true"
        )


class RunGuard(pl.Callback):
    """last.ckpt at epoch boundaries; MLflow flushed before each checkpoint; interrupt/failure."""

    def __init__(self, save_last: bool = True) -> None:
        self.save_last = save_last
        self._saved_step = 0  # global step of the newest last.ckpt (0: none worth writing yet)

    def _save_last(self, trainer: pl.Trainer) -> None:
        path = last_checkpoint_path(trainer)
        if self.save_last and path is not None and trainer.global_step > self._saved_step:
            trainer.save_checkpoint(path)
            self._saved_step = trainer.global_step

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self._saved_step = int(checkpoint.get("global_step", 0))  # resumed: no need to rewrite it

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # The previous epoch is complete here, its train metrics included; Lightning restarts
        # cleanly from this point ("restarted on epoch start").
        self._save_last(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._save_last(trainer)

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        mark_epoch_boundary(checkpoint)
        logger = find_mlflow_logger(trainer)
        if logger is None or not trainer.is_global_zero:  # other ranks log nothing
            return
        until_stored = logger.take_pending()

        def wait_for_metrics() -> None:
            try:
                until_stored()
            except Exception as error:  # noqa: BLE001 - the checkpoint matters more than a metric
                console.print(f"[yellow]warning:[/] MLflow could not take queued metrics: {error}")

        # The checkpoint is written only after the metrics before it are stored; where a thread
        # writes it, that thread waits for the store (a remote server: round trips), not training.
        writer = background_checkpoint_io(trainer)
        if writer is not None:
            writer.before_next_write(wait_for_metrics)
        else:
            wait_for_metrics()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        logger = find_mlflow_logger(trainer)
        interrupted = isinstance(exception, KeyboardInterrupt | SIGTERMException)
        if interrupted:
            reason = (
                "interrupted (SIGTERM)"
                if isinstance(exception, SIGTERMException)
                else ("interrupted (Ctrl-C)")
            )
            path = last_checkpoint_path(trainer)
            if path is not None:  # every rank takes part in saving
                trainer.save_checkpoint(path)
                out_dir = path.parent.parent
                console.print(
                    f"[bold yellow]{reason}[/] at step {trainer.global_step}: checkpoint saved "
                    f"to {path}; continue with: python train.py resume={out_dir}",
                    highlight=False,
                    soft_wrap=True,
                )
        else:
            reason = f"{type(exception).__name__}: {exception}"
        if logger is None or not trainer.is_global_zero:
            return
        logger.failed_status = "KILLED" if interrupted else "FAILED"
        try:
            logger.experiment.set_tag(
                logger.run_id, FAILURE_TAG, redact_text(reason)[:MAX_TAG_LENGTH]
            )
        except Exception as error:  # noqa: BLE001 - the store may be what failed
            console.print(f"[yellow]warning:[/] MLflow could not record the failure: {error}")
