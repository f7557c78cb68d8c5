"""Step timing shared by the platform run (a Lightning callback) and the plain loop."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from bench.device import synchronize


def steady_seconds_per_step(ends: list[float], warmup: int) -> float:
    """Mean interval between consecutive step ends, after `warmup` steps (start-up excluded).

    The mean, not the median, so periodic costs (logging every N steps, a slow batch from the
    loader) count as they do in a real run.
    """
    intervals = [b - a for a, b in zip(ends[warmup:], ends[warmup + 1 :], strict=False)]
    if not intervals:
        raise ValueError(f"need more than {warmup + 1} steps, got {len(ends)}")
    return statistics.fmean(intervals)


class StepTimer(pl.Callback):
    """Records when each training step ends; writes them to `path` (JSON) when training ends.

    Added to `train.py` by the benchmark as `+callbacks.step_timer`, so the timed run is the
    real entry point with Hydra, Lightning, metrics and MLflow all in place.
    """

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.ends: list[float] = []

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any
    ) -> None:
        synchronize(pl_module.device)
        self.ends.append(time.perf_counter())

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.path.write_text(json.dumps({"ends": self.ends}))


def epoch_seconds(starts: list[float], skip: int = 1) -> float:
    """Median whole-epoch time (epoch start to the next epoch's start, so validation, metrics,
    checkpoints and everything else at the boundary count), the first `skip` epochs left out."""
    durations = [b - a for a, b in zip(starts[skip:], starts[skip + 1 :], strict=False)]
    if not durations:
        raise ValueError(f"need more than {skip + 1} epoch starts, got {len(starts)}")
    return statistics.median(durations)


class EpochTimer(pl.Callback):
    """Records when each training epoch starts, plus one time after the last epoch ended
    (checkpoints written), and writes them to `path` (JSON) when training ends."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.starts: list[float] = []

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        synchronize(pl_module.device)
        self.starts.append(time.perf_counter())

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from seglab.checkpoint_io import wait_for_checkpoints

        wait_for_checkpoints(trainer)  # the last epoch's checkpoints are part of it
        self.path.write_text(json.dumps({"starts": [*self.starts, time.perf_counter()]}))
