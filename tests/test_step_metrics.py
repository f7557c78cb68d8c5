"""Training steps that never wait for the device between steps: the progress bar shows the step
loss read once per interval, and nothing else reads a tensor back at every step."""

from __future__ import annotations

import collections
import traceback
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from mlflow.tracking import MlflowClient

from seglab.callbacks.progress import StepMetricsProgressBar
from seglab.cli.train import train
from tests.conftest import compose_train, new_store, tiny_run

# What makes the host wait for a device tensor (on a GPU: a sync with the stream).
HOST_READS = ("item", "__bool__", "__float__", "__int__", "tolist")
# Reads of tensors that live on the CPU by design, whatever the device: the optimizer's step
# counters (torch.optim keeps `step` on the CPU unless capturable/fused) and the DataLoader's seed.
CPU_BY_DESIGN = ("torch/optim/", "torch/utils/data/")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _trainer(**callback_metrics: Any) -> Any:
    """What get_metrics reads from a trainer: no loggers, the bar's metrics, the step values."""
    return SimpleNamespace(
        loggers=[], progress_bar_metrics={"val/mIoU": 0.5}, callback_metrics=callback_metrics
    )


def test_step_metrics_are_read_once_per_interval_beside_lightnings_bar_metrics() -> None:
    clock = FakeClock()
    bar = StepMetricsProgressBar(
        step_metrics=["train/loss_step", "absent"], step_metrics_interval_s=1.0, clock=clock
    )
    module = pl.LightningModule()
    assert bar.get_metrics(_trainer(), module) == {"val/mIoU": 0.5}  # nothing logged yet ...
    first = bar.get_metrics(_trainer(**{"train/loss_step": torch.tensor(2.0)}), module)
    # ... read at the next update; an absent name is not shown
    assert first == {"val/mIoU": 0.5, "train/loss_step": 2.0}
    assert isinstance(first["train/loss_step"], float)
    clock.now = 0.99  # within the interval: the value shown is kept, nothing read
    later = _trainer(**{"train/loss_step": torch.tensor(1.0)})
    assert bar.get_metrics(later, module)["train/loss_step"] == 2.0
    clock.now = 1.0
    assert bar.get_metrics(later, module)["train/loss_step"] == 1.0


def test_a_negative_interval_is_refused_naming_the_key() -> None:
    with pytest.raises(ValueError, match="step_metrics_interval_s=-1"):
        StepMetricsProgressBar(step_metrics_interval_s=-1)


PROBES: list[StepProbe] = []


class StepProbe(pl.Callback):
    """Per training batch, from its start to the next one's (its step, the hooks after it and
    Lightning's per-batch bookkeeping): the host reads of tensors, and the step's loss. Made by
    the run's config; the test finds it in PROBES."""

    def __init__(self) -> None:
        PROBES.append(self)
        self.batch: int | None = None
        self.reads: collections.Counter[int] = collections.Counter()
        self.where: dict[int, list[str]] = collections.defaultdict(list)
        self.losses: list[torch.Tensor] = []
        self.shown: dict[str, Any] = {}

    def count(self) -> None:
        stack = traceback.format_stack(limit=6)[:-2]
        if self.batch is None or any(part in "".join(stack) for part in CPU_BY_DESIGN):
            return
        self.reads[self.batch] += 1
        self.where[self.batch].append(stack[-1])

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, idx: int) -> None:
        self.batch = idx

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, idx: int
    ) -> None:
        self.losses.append(outputs["loss"].detach().clone())

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.batch = None

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        (bar,) = [c for c in trainer.callbacks if isinstance(c, StepMetricsProgressBar)]
        self.shown = bar.get_metrics(trainer, pl_module)


def test_a_training_step_waits_for_the_device_once_and_the_loss_curve_is_kept(
    tmp_path: Path, tiny_synthetic_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Per step only the divergence guard reads the loss (before the backward); Lightning's
    loggers read `train/loss_step` every `log_every_n_steps`, and the bar once per interval. A
    `prog_bar=True` step metric, or anything else reading a tensor per step, adds a read to
    every batch and fails this. The MLflow curve holds the loss of every logged step."""
    PROBES.clear()
    for name in HOST_READS:
        original = getattr(torch.Tensor, name)

        def counted(self: torch.Tensor, *args: Any, _original: Any = original, **kw: Any) -> Any:
            for probe in PROBES:
                probe.count()
            return _original(self, *args, **kw)

        monkeypatch.setattr(torch.Tensor, name, counted)
    uri = new_store(tmp_path)
    overrides = [
        *tiny_run(tiny_synthetic_root, epochs=1, train_batches=6, val_batches=1),
        f"logger.tracking_uri={uri}",
        "data.batch_size=4",  # 6 batches of the 24 images
        "trainer.enable_progress_bar=true",
        "trainer.log_every_n_steps=3",  # the loggers write after batches 2 and 5
        # The bar reads the loss once, at its first update after batch 2 logged it: batch 3.
        "callbacks.progress_bar.step_metrics_interval_s=1000",
        "+callbacks.probe._target_=tests.test_step_metrics.StepProbe",
    ]
    train(compose_train(overrides, output_dir=tmp_path / "out"))
    monkeypatch.undo()
    (probe,) = PROBES
    reads = [probe.reads[i] for i in range(6)]
    assert reads == [1, 1, 2, 2, 1, 2], dict(probe.where)
    shown = probe.shown["train/loss_step"]  # the bar shows the loss it read: batch 2's
    assert isinstance(shown, float) and shown == float(probe.losses[2])
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("synthetic").experiment_id])
    history = client.get_metric_history(run.info.run_id, "train/loss_step")
    assert sorted((m.step, m.value) for m in history) == [
        (2, float(probe.losses[2])),
        (5, float(probe.losses[5])),
    ]
