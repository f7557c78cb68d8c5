"""The whole-epoch baseline: a hand-written loop doing what an epoch of `train.py` does.

Per epoch: `steps` training steps (same model, DataLoader, AdamW + poly, autocast precision as
`bench.plain_loop`), a full pass over the val DataLoader into a confusion matrix (a bincount),
the mIoU from it, then two checkpoints (`torch.save` of model + optimizer state: train.py writes
best.ckpt and last.ckpt). No Lightning, Hydra, MLflow, progress bar or guards.

`python -m bench.plain_epochs OUT.json EPOCHS STEPS [overrides...]` writes `{"starts": [...]}`
like `bench.timing.EpochTimer` (each epoch's start, then the end of the last one), and
`"train_ends"`: when each epoch's training steps ended, which gives the plain step time (the
regime the comparison is in: 20-60 ms is a GPU's).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from bench.device import synchronize
from bench.plain_loop import autocast_dtype, build_plain, device_images


def run_epochs(epochs: int, steps: int, overrides: list[str]) -> tuple[list[float], list[float]]:
    """Train `epochs` epochs of `steps` steps with validation and checkpoints: the epoch starts
    (plus the end of the last), and when each epoch's training steps ended (before validation)."""
    cfg, datamodule, model, optimizer, scheduler, memory_format, device = build_plain(
        overrides, total_steps=epochs * steps
    )
    dtype = autocast_dtype(str(cfg.trainer.precision))
    ignore, classes = int(cfg.data.ignore_index), int(cfg.data.num_classes)
    to_input = device_images(cfg, device)
    train_loader, val_loader = datamodule.train_dataloader(), datamodule.val_dataloader()
    starts: list[float] = []
    train_ends: list[float] = []
    with tempfile.TemporaryDirectory(prefix="seglab-plain-") as tmp:
        for _ in range(epochs):
            synchronize(device)
            starts.append(time.perf_counter())
            model.train()
            for step, batch in enumerate(train_loader):
                if step == steps:
                    break
                image = to_input(batch["image"].to(device)).contiguous(memory_format=memory_format)
                with torch.autocast(
                    device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None
                ):
                    loss = F.cross_entropy(
                        model(image), batch["mask"].to(device), ignore_index=ignore
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
            synchronize(device)
            train_ends.append(time.perf_counter())
            model.eval()
            counts = torch.zeros(classes * classes, dtype=torch.long, device=device)
            with torch.inference_mode():
                for batch in val_loader:
                    image = batch["image"].to(device).contiguous(memory_format=memory_format)
                    with torch.autocast(
                        device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None
                    ):
                        pred = model(image).max(dim=1).indices
                    label = batch["mask"].to(device).reshape(-1)
                    keep = label < classes
                    index = label[keep] * classes + pred.reshape(-1)[keep]
                    counts += torch.bincount(index, minlength=classes * classes)
            matrix = counts.reshape(classes, classes).double()
            inter = matrix.diagonal()
            _miou = float(torch.nanmean(inter / (matrix.sum(0) + matrix.sum(1) - inter)))
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
            torch.save(state, Path(tmp) / "best.ckpt")
            torch.save(state, Path(tmp) / "last.ckpt")
        starts.append(time.perf_counter())
    return starts, train_ends


def main(argv: list[str]) -> None:
    out, epochs, steps, overrides = Path(argv[0]), int(argv[1]), int(argv[2]), argv[3:]
    starts, train_ends = run_epochs(epochs, steps, overrides)
    out.write_text(json.dumps({"starts": starts, "train_ends": train_ends}))


if __name__ == "__main__":
    main(sys.argv[1:])
