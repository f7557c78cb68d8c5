"""The resolved config as MLflow params: flat dotted keys, no Hydra plumbing, bounded lengths."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from mlflow.utils.validation import MAX_ENTITY_KEY_LENGTH, MAX_PARAM_VAL_LENGTH

# Hydra instantiation keys: noise in a parameter table.
HYDRA_KEYS = ("_target_", "_partial_", "_convert_", "_recursive_", "_args_")


def _short_target(node: Mapping[str, Any]) -> str | None:
    target = node.get("_target_")
    return str(target).rsplit(".", 1)[-1] if target else None


def flatten_config(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"optim": {"lr": 1e-3}}` → `{"optim.lr": 1e-3}`.

    Lists of scalars stay one value; list items that are configs are numbered, and an item
    named by `_target_` keeps its class name as `<key>.<i>.type` (so augmentations stay legible).
    """
    flat: dict[str, Any] = {}
    for key, value in cfg.items():
        if key in HYDRA_KEYS:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_config(value, f"{name}."))
        elif isinstance(value, list | tuple) and any(isinstance(v, Mapping) for v in value):
            for i, item in enumerate(value):
                if isinstance(item, Mapping):
                    target = _short_target(item)
                    if target:
                        flat[f"{name}.{i}.type"] = target
                    flat.update(flatten_config(item, f"{name}.{i}."))
                else:
                    flat[f"{name}.{i}"] = item
        else:
            flat[name] = value
    return flat


def to_mlflow_params(cfg: Mapping[str, Any]) -> dict[str, str]:
    """Flattened params as strings, each within MLflow's key and value limits.

    Over-long values are cut (with a warning naming the key) rather than failing the run.
    """
    params: dict[str, str] = {}
    for key, value in flatten_config(cfg).items():
        text = "null" if value is None else str(value)
        if len(text) > MAX_PARAM_VAL_LENGTH:
            warnings.warn(
                f"param {key!r} is {len(text)} characters; logged cut to {MAX_PARAM_VAL_LENGTH}",
                stacklevel=2,
            )
            text = text[: MAX_PARAM_VAL_LENGTH - 3] + "..."
        params[key[:MAX_ENTITY_KEY_LENGTH]] = text
    return params
