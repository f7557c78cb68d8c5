"""Cost of the per-batch metric update: the confusion matrix fed one batch of predictions."""

from __future__ import annotations

import statistics
import time

import torch

from bench.config import compose_train
from seglab.metrics import ConfusionMatrix, class_ids


def metric_update_seconds(overrides: list[str], repeats: int = 50) -> float:
    """Median time of the argmax (`class_ids`) + `ConfusionMatrix.update` for one default-sized batch.

    Exactly what the task does per validation batch (`matrix.update(class_ids(logits), mask)`).
    """
    cfg = compose_train(overrides)
    size, batch, classes = (
        int(cfg.data.image_size),
        int(cfg.data.batch_size),
        int(cfg.data.num_classes),
    )
    matrix = ConfusionMatrix(classes, int(cfg.data.ignore_index))
    logits = torch.randn(batch, classes, size, size)
    mask = torch.randint(0, classes, (batch, size, size))
    mask[:, :2] = int(cfg.data.ignore_index)
    times = []
    for _ in range(repeats + 3):
        start = time.perf_counter()
        matrix.update(class_ids(logits), mask)
        times.append(time.perf_counter() - start)
    return statistics.median(times[3:])
