"""MLflow run names from the choices that matter; never MLflow's seeded random names."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import Any


def slug(text: str, keep: str = "") -> str:
    """`text` with every run of characters outside `[A-Za-z0-9_.=,+-]` and `keep` as one `-`
    (none at the ends): safe in run names and file names."""
    return re.sub(rf"[^A-Za-z0-9_.=,+{re.escape(keep)}-]+", "-", text).strip("-")


def model_label(model: Mapping[str, Any], choice: str | None = None) -> str:
    """`<model>-<encoder>`, e.g. `linknet-resnet18`: the network actually built.

    `model.name` first (an smp config's name is its `arch`, so `model=unet model.arch=linknet`
    is called linknet), the config group's choice only for a config without a name.
    """
    label = str(model.get("name") or choice or "model")
    if model.get("encoder"):
        label += f"-{model['encoder']}"
    return label


def run_name(cfg: Mapping[str, Any], choices: Mapping[str, Any]) -> str:
    """`<model>-<encoder>_<data>_<loss>-<suffix>`, e.g. `unet-resnet18_synthetic_ce-3f9a1c`.

    The suffix comes from the OS's entropy, not `random`, which `seed_everything` fixes — with
    MLflow's own names every seeded run would be called the same.
    """
    model_part = model_label(cfg.get("model", {}) or {}, choices.get("model"))
    data_part = str(choices.get("data") or (cfg.get("data") or {}).get("name") or "data")
    loss_part = str(choices.get("loss") or "loss")
    return f"{slug(model_part)}_{slug(data_part)}_{slug(loss_part)}-{secrets.token_hex(3)}"
