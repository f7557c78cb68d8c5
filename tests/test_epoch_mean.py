"""Epoch means of per-batch losses: what `self.log(on_epoch=True)` logs, seen at the same point."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from seglab.metrics.epoch_mean import EpochMeans, WeightedMean, log_epoch_mean


class _BothWays(pl.LightningModule):
    """Logs each loss through Lightning's epoch mean and through `log_epoch_mean`."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(3, 1)
        self.epoch_means = EpochMeans()

    def _loss(self, batch: list[torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch
        loss = F.mse_loss(self.layer(x), y)
        self.log(f"lightning_{stage}", loss, on_step=False, on_epoch=True, batch_size=len(x))
        log_epoch_mean(self, f"{stage}/loss", loss, len(x))
        return loss

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._loss(batch, "train")

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        self._loss(batch, "val")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


class _SeenByCallbacks(pl.Callback):
    """What a user's callback reads at the end of each epoch (before the module's own hook)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, float, float]] = []

    def _record(self, trainer: pl.Trainer, stage: str) -> None:
        metrics = trainer.callback_metrics
        ours, lightnings = metrics[f"{stage}/loss"], metrics[f"lightning_{stage}"]
        assert ours.dtype == lightnings.dtype == torch.float32
        self.seen.append((stage, ours.item(), lightnings.item()))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._record(trainer, "train")

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._record(trainer, "val")


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_the_epoch_means_equal_lightnings_to_the_bit_where_callbacks_read_them(
    precision: str,
) -> None:
    gen = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(7, 3, generator=gen), torch.randn(7, 1, generator=gen))
    loader = DataLoader(data, batch_size=3)  # batches of 3, 3 and 1: the weights matter
    seen = _SeenByCallbacks()
    trainer = pl.Trainer(
        max_epochs=3, precision=precision, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=1,
        callbacks=[seen],
    )  # fmt: skip
    trainer.fit(_BothWays(), loader, loader)
    assert [stage for stage, *_ in seen.seen] == ["val"] + [
        "val",
        "train",
    ] * 3  # sanity check first
    for stage, ours, lightnings in seen.seen:
        assert ours == lightnings, (stage, ours, lightnings)
    assert len({ours for stage, ours, _ in seen.seen if stage == "train"}) == 3  # reset per epoch


def test_a_batch_weighs_by_its_size_and_nan_stays_nan() -> None:
    mean = WeightedMean()
    mean.update(torch.tensor(1.0), 3)
    mean.update(torch.tensor(5.0, dtype=torch.bfloat16), 1)
    assert mean.compute().item() == 2.0
    mean.update(torch.tensor(float("nan")), 2)
    assert math.isnan(mean.compute().item())  # as Lightning's mean: a NaN loss is not hidden


def test_only_the_first_update_after_a_reset_asks_to_log() -> None:
    means = EpochMeans()
    assert means.update("train/loss", torch.tensor(2.0), 2)
    assert not means.update("train/loss", torch.tensor(4.0), 2)
    assert means.update("val/loss", torch.tensor(4.0), 1)
    means.means["train/loss"].reset()  # what Lightning does at the epoch's end
    assert means.update("train/loss", torch.tensor(6.0), 1)
    assert means.state_dict() == {}  # nothing added to checkpoints


def test_the_means_are_summed_across_processes() -> None:
    mean = WeightedMean()
    assert {k: f.__name__ for k, f in mean._reductions.items()} == {
        "total": "dim_zero_sum",
        "weight": "dim_zero_sum",
    }
