"""Mask R-CNN v2 (torchvision's maskrcnn_resnet50_fpn_v2) training step time and peak memory
at a real image size: the heaviest model seglab trains, timed on the GPU by `make bench`.

`python -m bench.mask_rcnn OUT.json HEIGHT WIDTH BATCH STEPS DEVICE` writes the step time
(median after two warm-up steps) and the peak memory CUDA allocated (null on CPU).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from bench.device import synchronize


def _targets(batch: int, height: int, width: int, device: torch.device) -> list[dict[str, Any]]:
    """Eight box-shaped instances per image, classes 1..8 (Cityscapes' things)."""
    gen = torch.Generator().manual_seed(0)
    targets = []
    for _ in range(batch):
        x0 = torch.randint(0, width // 2, (8,), generator=gen)
        y0 = torch.randint(0, height // 2, (8,), generator=gen)
        boxes = torch.stack([x0, y0, x0 + width // 8, y0 + height // 8], dim=1).float()
        masks = torch.zeros(8, height, width, dtype=torch.uint8)
        for i, (a, b, c, d) in enumerate(boxes.long().tolist()):
            masks[i, b:d, a:c] = 1
        labels = torch.arange(1, 9)
        targets.append({"boxes": boxes, "labels": labels, "masks": masks})
    return [{k: v.to(device) for k, v in t.items()} for t in targets]


def measure(height: int, width: int, batch: int, steps: int, device: str) -> dict[str, Any]:
    """Median training-step time (AMP on CUDA) and CUDA peak memory of Mask R-CNN v2."""
    from torchvision.models.detection import maskrcnn_resnet50_fpn_v2

    dev = torch.device(device)
    # min/max size = the image: torchvision would otherwise resize every image to 800 px
    model = maskrcnn_resnet50_fpn_v2(
        weights=None, weights_backbone=None, num_classes=9,
        min_size=min(height, width), max_size=max(height, width),
    )  # fmt: skip
    model.to(dev).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images = [torch.rand(3, height, width, device=dev) for _ in range(batch)]
    targets = _targets(batch, height, width, dev)
    amp = dev.type == "cuda"
    scaler = torch.amp.GradScaler(enabled=amp)
    if amp:
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps + 2):
        start = time.perf_counter()
        with torch.autocast(dev.type, enabled=amp):
            loss = sum(model(images, targets).values())
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        synchronize(dev)
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2**20 if amp else None
    return {
        "mask_rcnn_v2_s_per_step": statistics.median(times[2:]),
        "mask_rcnn_v2_peak_mem_mb": peak,
        "image_size": [height, width], "batch_size": batch, "device": dev.type, "amp": amp,
    }  # fmt: skip


def main(argv: list[str]) -> None:
    out, height, width, batch, steps, device = argv
    result = measure(int(height), int(width), int(batch), int(steps), device)
    Path(out).write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
