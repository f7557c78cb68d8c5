"""Pruning of Optuna trials: a trial whose `optimized_metric` lags stops after that epoch.

Written for seglab rather than optuna-integration's PyTorchLightningPruningCallback, which
targets the `lightning` package (seglab trains with `pytorch_lightning`) and raises TrialPruned
out of fit: here the run ends normally (checkpoints, MLflow run closed) and the job reports
the pruning, which the sweeper turns into the trial's PRUNED state.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl

from seglab.search.job import current_trial
from seglab.search.study import PRUNED_ATTR


class OptunaPruning(pl.Callback):
    """After each validation: report `monitor` to the job's trial; stop if the pruner says so.

    A no-op outside an Optuna search. Under DDP rank 0 decides and the others follow.
    """

    def __init__(self, monitor: str = "val/mIoU") -> None:
        self.monitor = monitor
        self.trial: Any = None
        self.pruned_at: int | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit" and trainer.is_global_zero:
            self.trial = current_trial()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        prune = False
        value = trainer.callback_metrics.get(self.monitor)
        if self.trial is not None and value is not None:
            epoch = trainer.current_epoch
            self.trial.report(float(value), step=epoch)
            prune = self.trial.should_prune()
            if prune:
                self.pruned_at = epoch
                self.trial.set_user_attr(PRUNED_ATTR, epoch)
        if trainer.world_size > 1:
            prune = bool(trainer.strategy.broadcast(prune, src=0))
        if prune:
            trainer.should_stop = True
