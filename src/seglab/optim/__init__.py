"""Learning-rate schedules (poly, cosine, none) with an optional linear warm-up, stepped per batch."""

from __future__ import annotations

from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    LinearLR,
    LRScheduler,
    PolynomialLR,
    SequentialLR,
)

from seglab.errors import ConfigError

SCHEDULES = ("poly", "cosine", "none")


def build_scheduler(
    optimizer: Optimizer, cfg: dict[str, Any], total_steps: int
) -> LRScheduler | None:
    """The configured schedule over `total_steps` optimiser steps, or None for `name: none`."""
    name = cfg.get("name", "none")
    if name not in SCHEDULES:
        raise ConfigError(f"scheduler.name={name!r}; expected one of {SCHEDULES}")
    warmup = int(cfg.get("warmup_steps", 0) or 0)
    ratio = float(cfg.get("warmup_ratio", 0) or 0)  # a share of the run, when no step count
    if not 0 <= ratio < 1:
        raise ConfigError(f"scheduler.warmup_ratio={ratio} must be in [0, 1)")
    warmup = warmup or int(ratio * total_steps)
    if warmup < 0 or (warmup and warmup >= total_steps):
        raise ConfigError(
            f"scheduler.warmup_steps={warmup} must be in [0, {total_steps}) (the run's total steps)"
        )
    decay_steps = max(1, total_steps - warmup)
    if name == "poly":
        main: LRScheduler | None = PolynomialLR(
            optimizer, total_iters=decay_steps, power=float(cfg.get("power", 0.9))
        )
    elif name == "cosine":
        main = CosineAnnealingLR(optimizer, T_max=decay_steps, eta_min=float(cfg.get("min_lr", 0)))
    else:
        main = None
    if not warmup:
        return main
    ramp = LinearLR(
        optimizer, start_factor=float(cfg.get("warmup_start_factor", 0.1)), total_iters=warmup
    )
    if main is None:
        return ramp
    return SequentialLR(optimizer, schedulers=[ramp, main], milestones=[warmup])
