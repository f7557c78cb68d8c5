"""MLflow run names from the choices that matter; never MLflow's seeded random names."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import Any


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=,+-]+", "-", text).strip("-")


def run_name(cfg: Mapping[str, Any], choices: Mapping[str, Any]) -> str:
    """`<model>-<encoder>_<data>_<loss>-<suffix>`, e.g. `unet-resnet18_synthetic_ce-3f9a1c`.

    The suffix comes from the OS's entropy, not `random`, which `seed_everything` fixes — with
    MLflow's own names every seeded run would be called the same.
    """
    model = cfg.get("model", {}) or {}
    model_part = str(choices.get("model") or model.get("name") or "model")
    if model.get("encoder"):
        model_part += f"-{model['encoder']}"
    data_part = str(choices.get("data") or (cfg.get("data") or {}).get("name") or "data")
    loss_part = str(choices.get("loss") or "loss")
    return f"{_slug(model_part)}_{_slug(data_part)}_{_slug(loss_part)}-{secrets.token_hex(3)}"
