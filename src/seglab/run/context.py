"""The Hydra runtime's facts a run records: the chosen config groups, the command line's
overrides and the output folder. Each has a plain answer outside Hydra (tests, notebooks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig


def hydra_choices() -> dict[str, Any]:
    """Config group choices of the running app (`{"model": "unet", ...}`), {} outside Hydra."""
    if not HydraConfig.initialized():
        return {}
    return dict(HydraConfig.get().runtime.choices)


def hydra_overrides() -> list[str]:
    """The task overrides given on the command line, [] outside Hydra."""
    if not HydraConfig.initialized():
        return []
    return list(HydraConfig.get().overrides.task)


def output_dir(cfg: Any) -> Path:
    """The run's output folder (created)."""
    path = Path(cfg.paths.output_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path
