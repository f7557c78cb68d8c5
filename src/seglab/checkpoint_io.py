"""Checkpoint files written by a background thread, so an epoch boundary does not wait on disk.

A checkpoint of a U-Net resnet18 with its AdamW state is ~170 MB; serialising and writing two of
them per epoch (best + last) stalled training for 0.5-2 s at every boundary. Here the tensors are
copied on the training thread (fast: memory bandwidth, no pickling, no disk) and written by one
worker thread, in order, atomically (`DirectTorchCheckpointIO`: a temporary file beside the
target, then a rename), so a crash mid-write never leaves a half-written checkpoint behind.

Anything that reads a checkpoint this run wrote calls `wait_for_checkpoints(trainer)` first;
Lightning's teardown (end of fit, an exception, Ctrl-C) waits for the queue as well. What must be
done before a checkpoint appears on disk, but need not hold up training (waiting for the metrics
queued for MLflow), runs on the writer thread first: `before_next_write`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins import TorchCheckpointIO
from lightning_fabric.utilities.apply_func import apply_to_collection
from lightning_fabric.utilities.cloud_io import get_filesystem
from pytorch_lightning.plugins.io import AsyncCheckpointIO


def _copy(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().clone()


def _after(tasks: list[Callable[[], None]], write: Callable[..., None], *args: Any) -> None:
    """On the writer thread: `tasks` (before_next_write's), then `write(*args)`."""
    for task in tasks:
        task()
    write(*args)


def _key(path: str | os.PathLike) -> str:
    """One spelling per file ("a/./best.ckpt", Path("a/best.ckpt")), to match waits to writes."""
    return os.path.abspath(os.fspath(path))


class DirectTorchCheckpointIO(TorchCheckpointIO):
    """Lightning's `TorchCheckpointIO`, writing local files straight to disk.

    Lightning serialises into memory first (for object stores) and copies that buffer out to a
    temporary file: for a local path that is two extra copies of the checkpoint in memory and
    about twice the time (170 MB: ≈ 0.45 s against ≈ 0.22 s). Here `torch.save` writes a
    temporary file beside the target, renamed over it once complete, so a crash mid-write still
    never leaves a half-written checkpoint. Other filesystems (s3://, gs://...) go to Lightning.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None
    ) -> None:
        protocol = get_filesystem(path).protocol
        local = "file" in ((protocol,) if isinstance(protocol, str) else protocol)
        if storage_options is not None or not local:
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        # A name of its own (not mkstemp's private mode: the file keeps the umask's permissions).
        temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            with temporary.open("xb") as file:
                torch.save(checkpoint, file)
            os.replace(temporary, target)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise


class BackgroundCheckpointIO(AsyncCheckpointIO):
    """Lightning's `AsyncCheckpointIO` with a `wait()` for readers and errors raised promptly.

    Lightning's plugin reports a failed write only at the next save or at teardown and gives
    no way to wait for a write; a reader of `best.ckpt` (the MLflow upload at train end) needs
    one.
    """

    def __init__(self, checkpoint_io: Any = None, max_queued: int = 2) -> None:
        super().__init__(checkpoint_io if checkpoint_io is not None else DirectTorchCheckpointIO())
        if max_queued < 1:
            raise ValueError(f"max_queued={max_queued}: expected at least 1 write in flight")
        # Writes in flight at most: an epoch boundary's two (best, last). The next boundary waits
        # for the previous one's, so a slow disk or tracking store slows training down instead of
        # piling up copies of the whole training state in memory, and checkpoints lag at most one.
        self.max_queued = max_queued
        self._pending: list[tuple[str, Future]] = []  # (path, its write), in queue order
        self._before_write: list[Callable[[], None]] = []  # for the next write, in order

    def _ensure_setup(self) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint")

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None
    ) -> None:
        """Copy the tensors now (training goes on changing them), write them in the background."""
        self._raise_failed()
        while len(self._pending) >= self.max_queued:
            self._pending[0][1].exception()  # the oldest write done (a failure is raised below)
            self._raise_failed()
        self._ensure_setup()
        assert self._executor is not None and self.checkpoint_io is not None
        copied = apply_to_collection(checkpoint, torch.Tensor, _copy)
        tasks, self._before_write = self._before_write, []
        write = self.checkpoint_io.save_checkpoint
        future = self._executor.submit(_after, tasks, write, copied, path, storage_options)
        self._pending.append((_key(path), future))

    def before_next_write(self, task: Callable[[], None]) -> None:
        """Run `task` on the writer thread before the next checkpoint queued is written: the
        file appears only after it, and the training thread does not wait for it."""
        self._before_write.append(task)

    def wait(self, path: str | os.PathLike | None = None) -> None:
        """Block until every queued checkpoint (or only those of `path`, so a reader of best.ckpt
        need not wait for last.ckpt) is on disk; a failed write raises here."""
        wanted = None if path is None else _key(path)
        pending = [f for p, f in self._pending if wanted in (None, p)]
        self._pending = [(p, f) for p, f in self._pending if wanted not in (None, p)]
        errors = [f.exception() for f in pending]
        first = next((e for e in errors if e is not None), None)
        if first is not None:
            raise first

    def _raise_failed(self) -> None:
        done = [f for _, f in self._pending if f.done()]
        self._pending = [(p, f) for p, f in self._pending if not f.done()]
        for future in done:
            if future.exception() is not None:
                raise future.exception()  # type: ignore[misc]

    def remove_checkpoint(self, path: Any) -> None:
        self.wait()  # never remove a file a queued write is about to create
        super().remove_checkpoint(path)

    def load_checkpoint(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.wait()
        return super().load_checkpoint(*args, **kwargs)

    def teardown(self) -> None:
        """Wait for the queued writes; tasks left for a write that never came run here."""
        tasks, self._before_write = self._before_write, []
        try:
            self.wait()
            for task in tasks:
                task()
        finally:
            super().teardown()


def background_checkpoint_io(trainer: Any) -> BackgroundCheckpointIO | None:
    """The trainer's background checkpoint writer, None where it writes checkpoints itself."""
    checkpoint_io = getattr(trainer.strategy, "checkpoint_io", None)
    return checkpoint_io if isinstance(checkpoint_io, BackgroundCheckpointIO) else None


def wait_for_checkpoints(trainer: Any, path: str | os.PathLike | None = None) -> None:
    """Wait until the checkpoints `trainer` queued (or those of `path` only) are written
    (no-op for other checkpoint IO)."""
    checkpoint_io = background_checkpoint_io(trainer)
    if checkpoint_io is not None:
        checkpoint_io.wait(path)
