"""Checkpoints written in the background and MLflow's queue waited on, not restarted: what moves
the epoch boundary off the training thread (issue 20) keeps its guarantees."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient

from seglab.checkpoint_io import BackgroundCheckpointIO
from seglab.tracking.logger import SeglabMLFlowLogger
from tests.conftest import new_store


def test_background_write_holds_the_state_at_save_time(tmp_path: Path) -> None:
    io = BackgroundCheckpointIO()
    io.checkpoint_io = __import__("lightning_fabric").plugins.TorchCheckpointIO()
    weights = torch.zeros(1000)
    path = tmp_path / "sub" / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": weights}, "epoch": 3}, path)
    weights += 1  # the next training step changes the weights while the write is queued
    io.wait()
    saved = torch.load(path, weights_only=True)
    assert saved["epoch"] == 3 and torch.equal(saved["state_dict"]["w"], torch.zeros(1000))
    assert io.load_checkpoint(path)["epoch"] == 3
    io.teardown()


def test_a_failed_write_is_raised_by_wait_and_teardown(tmp_path: Path) -> None:
    io = BackgroundCheckpointIO()
    io.checkpoint_io = __import__("lightning_fabric").plugins.TorchCheckpointIO()
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    io.save_checkpoint({"w": torch.ones(2)}, blocker / "last.ckpt")
    with pytest.raises(OSError):
        io.wait()
    io.save_checkpoint({"w": torch.ones(2)}, blocker / "best.ckpt")
    with pytest.raises(OSError):
        io.teardown()
    assert not (tmp_path / "file" / "best.ckpt").exists() and blocker.read_text() == "not a folder"


def test_flush_waits_for_queued_metrics_without_restarting_the_queue(tmp_path: Path) -> None:
    uri = new_store(tmp_path)
    logger = SeglabMLFlowLogger(experiment_name="flush", tracking_uri=uri, synchronous=False)
    logger.log_hyperparams({"optim": {"lr": 0.1}})
    for step in range(5):
        logger.log_metrics({"train/loss_step": 1.0 / (step + 1), "bad:name": 2.0}, step=step)
    logger.flush()
    assert logger._pending == []
    client = MlflowClient(uri)
    history = client.get_metric_history(logger.run_id, "train/loss_step")
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == [0, 1, 2, 3, 4]
    assert len(client.get_metric_history(logger.run_id, "badname")) == 5  # cleaned as Lightning
    assert "0.1" in client.get_run(logger.run_id).data.params.values()
    logger.finalize("success")
    assert client.get_run(logger.run_id).info.status == "FINISHED"
