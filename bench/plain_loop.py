"""The baseline: a plain PyTorch training loop with train.py's default model, data and optimiser.

Same network (smp U-Net built by the same factory, channels_last), same DataLoader (dataset,
augmentations, batch size, workers), same AdamW + poly schedule, same autocast precision, same
threads. No Lightning, Hydra, metrics or MLflow: what is left is the cost of training itself.

`python -m bench.plain_loop OUT.json STEPS [overrides...]` writes `{"ends": [...]}` like
`bench.timing.StepTimer`.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from bench.config import compose_train
from bench.device import synchronize, torch_device


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype Lightning uses for a precision string (None: full precision)."""
    if precision.startswith("bf16"):
        return torch.bfloat16
    if precision.startswith("16"):
        return torch.float16
    return None


def device_images(cfg: Any, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """What the task does with a batch on the device (data.normalize_on_device): 8-bit images
    normalised by data.mean/std, float ones as they are."""
    from seglab.data.transforms import normalization_table, normalize_uint8

    max_pixel_value = float(cfg.data.get("max_pixel_value") or 255.0)
    table = normalization_table(cfg.data.mean, cfg.data.std, max_pixel_value).to(device)
    return lambda images: normalize_uint8(images, table) if images.dtype == torch.uint8 else images


def build_plain(overrides: list[str], total_steps: int) -> tuple[Any, ...]:
    """cfg, datamodule (set up for fit), model, AdamW, poly schedule over `total_steps`, the
    memory format and the device: train.py's defaults, built without Lightning."""
    cfg = compose_train(overrides)
    torch.manual_seed(cfg.seed)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    model_cfg: dict[str, Any] = {k: v for k, v in cfg.model.items() if k not in ("task", "name")}
    channels_last = model_cfg.pop("channels_last", True)
    model = instantiate(model_cfg)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    device = torch_device(str(cfg.trainer.accelerator))
    model.to(device=device, memory_format=memory_format).train()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.PolynomialLR(optimizer, total_steps, cfg.scheduler.power)
    return cfg, datamodule, model, optimizer, scheduler, memory_format, device


def train_steps(steps: int, overrides: list[str]) -> list[float]:
    """Run `steps` optimiser steps; returns the time each one ended."""
    # the poly schedule over this run's steps, stepped per batch
    cfg, datamodule, model, optimizer, scheduler, memory_format, device = build_plain(
        overrides, steps
    )
    dtype = autocast_dtype(str(cfg.trainer.precision))
    ignore = int(cfg.data.ignore_index)
    to_input = device_images(cfg, device)
    ends: list[float] = []
    while len(ends) < steps:
        for batch in datamodule.train_dataloader():
            image = to_input(batch["image"].to(device)).contiguous(memory_format=memory_format)
            with torch.autocast(
                device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None
            ):
                logits = model(image)
                loss = F.cross_entropy(logits, batch["mask"].to(device), ignore_index=ignore)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            synchronize(device)
            ends.append(time.perf_counter())
            if len(ends) == steps:
                break
    return ends


def main(argv: list[str]) -> None:
    out, steps, overrides = Path(argv[0]), int(argv[1]), argv[2:]
    out.write_text(json.dumps({"ends": train_steps(steps, overrides)}))


if __name__ == "__main__":
    main(sys.argv[1:])
