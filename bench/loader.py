"""Throughput of train.py's default training DataLoader (decode + augment, default workers)."""

from __future__ import annotations

import time

from hydra.utils import instantiate

from bench.config import compose_train


def loader_images_per_second(overrides: list[str], batches: int, warmup: int = 3) -> float:
    """Images/s delivered by the train DataLoader alone, after `warmup` batches (worker start)."""
    cfg = compose_train(overrides)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    seen, start, count = 0, 0.0, 0
    while count < warmup + batches:
        for batch in loader:
            count += 1
            if count == warmup:
                start = time.perf_counter()
            elif count > warmup:
                seen += batch["image"].shape[0]
            if count == warmup + batches:
                break
    return seen / (time.perf_counter() - start)
