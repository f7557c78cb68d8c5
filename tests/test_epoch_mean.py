"""Epoch means of per-batch losses: the same numbers as Lightning's `self.log(on_epoch=True)`."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from seglab.metrics.epoch_mean import EpochMeans, WeightedMean


class _BothWays(pl.LightningModule):
    """Logs each loss through Lightning's epoch mean and through `EpochMeans`."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(3, 1)
        self.epoch_means = EpochMeans()

    def _loss(self, batch: list[torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch
        loss = F.mse_loss(self.layer(x), y)
        self.log(f"lightning_{stage}", loss, on_step=False, on_epoch=True, batch_size=len(x))
        self.epoch_means.update(f"{stage}/loss", loss, len(x))
        return loss

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._loss(batch, "train")

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        self._loss(batch, "val")

    def on_train_epoch_end(self) -> None:
        self.log_dict(self.epoch_means.pop("train/"))

    def on_validation_epoch_end(self) -> None:
        self.log_dict(self.epoch_means.pop("val/"))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_the_epoch_means_equal_lightnings_to_the_bit(precision: str) -> None:
    gen = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(7, 3, generator=gen), torch.randn(7, 1, generator=gen))
    loader = DataLoader(data, batch_size=3)  # batches of 3, 3 and 1: the weights matter
    trainer = pl.Trainer(
        max_epochs=2, precision=precision, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(_BothWays(), loader, loader)
    metrics = trainer.callback_metrics
    for stage in ("train", "val"):
        ours, lightnings = metrics[f"{stage}/loss"], metrics[f"lightning_{stage}"]
        assert ours.dtype == lightnings.dtype == torch.float32
        assert torch.equal(ours, lightnings), (stage, ours.item(), lightnings.item())


def test_a_batch_weighs_by_its_size_and_nan_stays_nan() -> None:
    mean = WeightedMean()
    mean.update(torch.tensor(1.0), 3)
    mean.update(torch.tensor(5.0, dtype=torch.bfloat16), 1)
    assert mean.compute().item() == 2.0
    mean.update(torch.tensor(float("nan")), 2)
    assert math.isnan(mean.compute().item())  # as Lightning's mean: a NaN loss is not hidden


def test_pop_returns_the_stages_updated_means_and_starts_a_new_epoch() -> None:
    means = EpochMeans()
    means.update("train/loss", torch.tensor(2.0), 2)
    means.update("val/loss", torch.tensor(4.0), 1)
    assert means.pop("train/") == {"train/loss": torch.tensor(2.0)}
    assert means.pop("train/") == {}  # reset: a stage without steps logs nothing
    means.update("train/loss", torch.tensor(6.0), 1)
    assert means.pop("train/") == {"train/loss": torch.tensor(6.0)}
    assert means.pop("val/") == {"val/loss": torch.tensor(4.0)}
    assert means.state_dict() == {}  # nothing added to checkpoints


def test_the_means_are_summed_across_processes() -> None:
    mean = WeightedMean()
    assert {k: f.__name__ for k, f in mean._reductions.items()} == {
        "total": "dim_zero_sum",
        "weight": "dim_zero_sum",
    }
