"""Checkpoints written in the background and MLflow's queue waited on, not restarted: what moves
the epoch boundary off the training thread (issue 20) keeps its guarantees."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from mlflow import MlflowClient

from seglab.callbacks.guards import RunGuard
from seglab.checkpoint_io import BackgroundCheckpointIO, DirectTorchCheckpointIO
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


def test_local_checkpoints_are_written_in_place_atomically(tmp_path: Path) -> None:
    io = DirectTorchCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"w": torch.arange(4)}, path)
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.arange(4))
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not a temporary file's 0600

    class Unpicklable:
        def __reduce__(self):  # noqa: ANN204
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError, match="cannot pickle"):
        io.save_checkpoint({"w": torch.zeros(4), "bad": Unpicklable()}, path)
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.arange(4))  # untouched
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]  # no temporary left


def test_remote_checkpoints_go_through_lightning(tmp_path: Path) -> None:
    fsspec = pytest.importorskip("fsspec")
    DirectTorchCheckpointIO().save_checkpoint({"w": torch.ones(3)}, "memory://seglab/last.ckpt")
    with fsspec.open("memory://seglab/last.ckpt", "rb") as file:
        assert torch.equal(torch.load(file, weights_only=True)["w"], torch.ones(3))


def test_waiting_for_one_path_leaves_later_writes_queued(tmp_path: Path) -> None:
    # The MLflow model is made from best.ckpt while last.ckpt is still being written.
    release = threading.Event()

    class SlowLast(__import__("lightning_fabric").plugins.TorchCheckpointIO):
        def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:  # noqa: ANN001
            if Path(path).name == "last.ckpt":
                assert release.wait(timeout=60)
            super().save_checkpoint(checkpoint, path, storage_options)

    io = BackgroundCheckpointIO(SlowLast())
    best, last = tmp_path / "best.ckpt", tmp_path / "last.ckpt"
    io.save_checkpoint({"w": torch.ones(2)}, best)
    io.save_checkpoint({"w": torch.zeros(2)}, last)
    io.wait(f"{tmp_path}/./best.ckpt")  # another spelling of the same file
    assert best.is_file() and not last.exists()
    release.set()
    io.wait()
    assert torch.equal(torch.load(last, weights_only=True)["w"], torch.zeros(2))
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


class QueuedBatch:
    """A batch in MLflow's asynchronous queue (a `RunOperations`), stored once released."""

    def __init__(self, events: list[str], release: threading.Event, error: bool = False) -> None:
        self.events, self.release, self.error = events, release, error

    def wait(self) -> None:
        assert self.release.wait(timeout=60)
        self.events.append(f"stored on {threading.current_thread().name}")
        if self.error:
            raise ConnectionError("tracking server unreachable")


def test_a_checkpoint_is_written_after_its_metrics_are_stored_without_training_waiting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """RunGuard's promise (no checkpoint on disk before the metrics logged before it are in
    MLflow), kept by the writer thread: the training thread returns at once."""
    events: list[str] = []
    release = threading.Event()

    class Recording(DirectTorchCheckpointIO):
        def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:  # noqa: ANN001
            events.append(f"written {Path(path).name}")
            super().save_checkpoint(checkpoint, path, storage_options)

    io = BackgroundCheckpointIO(Recording())
    logger = SeglabMLFlowLogger(experiment_name="order", tracking_uri=new_store(tmp_path))
    logger._pending = [QueuedBatch(events, release), QueuedBatch(events, release, error=True)]
    trainer = SimpleNamespace(
        loggers=[logger], is_global_zero=True, strategy=SimpleNamespace(checkpoint_io=io)
    )
    RunGuard().on_save_checkpoint(trainer, None, {"epoch": 1})  # type: ignore[arg-type]
    io.save_checkpoint({"w": torch.ones(2)}, tmp_path / "last.ckpt")
    assert events == [] and logger._pending == []  # queued, nobody waited on this thread
    release.set()
    io.wait()
    assert events == ["stored on checkpoint_0", "stored on checkpoint_0", "written last.ckpt"]
    # a store failure is reported, and the checkpoint is written all the same
    assert "MLflow could not take queued metrics: tracking server unreachable" in (
        capsys.readouterr().err
    )
    assert torch.equal(torch.load(tmp_path / "last.ckpt", weights_only=True)["w"], torch.ones(2))
    # without a background writer (trainer.plugins set), the saving thread waits itself
    events.clear()
    logger._pending = [QueuedBatch(events, release)]
    trainer.strategy.checkpoint_io = DirectTorchCheckpointIO()
    RunGuard().on_save_checkpoint(trainer, None, {"epoch": 2})  # type: ignore[arg-type]
    assert events == ["stored on MainThread"]
    # a wait left for a write that never came runs at teardown
    logger._pending = [QueuedBatch(events, release)]
    trainer.strategy.checkpoint_io = io
    RunGuard().on_save_checkpoint(trainer, None, {"epoch": 3})  # type: ignore[arg-type]
    io.teardown()
    assert events == ["stored on MainThread", "stored on MainThread"]
    logger.finalize("success")


def test_a_third_write_waits_for_the_oldest_so_copies_never_pile_up(tmp_path: Path) -> None:
    """A disk or tracking store slower than the epochs slows training down: at most one
    boundary's writes (best, last) are in flight, each holding a copy of the training state."""
    release = threading.Event()

    class Gated(DirectTorchCheckpointIO):
        def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:  # noqa: ANN001
            assert release.wait(timeout=60)
            super().save_checkpoint(checkpoint, path, storage_options)

    io = BackgroundCheckpointIO(Gated())
    assert io.max_queued == 2
    io.save_checkpoint({"epoch": 1}, tmp_path / "best.ckpt")
    io.save_checkpoint({"epoch": 1}, tmp_path / "last.ckpt")  # both queued at once
    third = threading.Thread(target=io.save_checkpoint, args=({"epoch": 2}, tmp_path / "best.ckpt"))
    third.start()
    third.join(timeout=0.5)
    assert third.is_alive()  # waiting for room
    release.set()
    third.join(timeout=60)
    assert not third.is_alive()
    io.wait()
    assert torch.load(tmp_path / "best.ckpt", weights_only=True)["epoch"] == 2
    io.teardown()
    with pytest.raises(ValueError, match="max_queued=0"):
        BackgroundCheckpointIO(max_queued=0)
