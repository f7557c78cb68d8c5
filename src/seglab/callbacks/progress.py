"""The training progress bar, showing per-step metrics without waiting for the device each step.

Lightning turns every metric logged with `prog_bar=True` into a Python number after every
batch (`.item()` in its logger connector), whether or not a bar is drawn. On a GPU that is a
wait for the step's last kernel at every step boundary: the CPU cannot queue the next batch's
copy and forward while the GPU finishes, so the GPU idles through Lightning's per-batch work.
seglab's tasks therefore log their per-step loss without `prog_bar`, and this bar reads the
values it shows from `trainer.callback_metrics` (device tensors) at most once per interval.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import RichProgressBar


class StepMetricsProgressBar(RichProgressBar):
    """Lightning's rich bar, plus `step_metrics` (names logged per step) read every
    `step_metrics_interval_s` seconds: one device wait per interval instead of one per step."""

    def __init__(
        self,
        step_metrics: Sequence[str] = ("train/loss_step",),
        step_metrics_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if step_metrics_interval_s < 0:
            raise ValueError(
                f"callbacks.progress_bar.step_metrics_interval_s={step_metrics_interval_s}: "
                "expected seconds >= 0"
            )
        self.step_metrics = list(step_metrics)
        self.step_metrics_interval_s = float(step_metrics_interval_s)
        self._clock = clock
        self._next_read = -float("inf")
        self._step_values: dict[str, float] = {}

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        now = self._clock()
        if self.step_metrics and now >= self._next_read:
            metrics = trainer.callback_metrics
            values = {name: float(metrics[name]) for name in self.step_metrics if name in metrics}
            if values:  # none logged yet: look again at the next update
                self._step_values = values
                self._next_read = now + self.step_metrics_interval_s
        return {**items, **self._step_values}
