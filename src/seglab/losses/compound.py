"""Weighted sum of loss terms, so every loss config has the same shape and terms can be added."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig
from torch import nn


def _term_name(loss: nn.Module, taken: set[str]) -> str:
    """A readable, unique key for a term: the class name without `Loss`, snake-cased."""
    base = re.sub(r"Loss$", "", type(loss).__name__) or type(loss).__name__
    base = re.sub(r"(?<!^)(?=[A-Z])", "_", base).lower()
    name, i = base, 1
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    return name


def _as_items(terms: Any) -> list[tuple[str | None, Any]]:
    """(name or None, term) pairs from a list or a name -> term mapping, plain or OmegaConf."""
    if isinstance(terms, (Mapping, DictConfig)):
        return [(str(k), v) for k, v in terms.items()]
    if isinstance(terms, (Sequence, ListConfig)) and not isinstance(terms, str):
        return [(None, t) for t in terms]
    raise TypeError(f"loss.terms must be a list or a mapping of terms, got {type(terms).__name__}")


class CompoundLoss(nn.Module):
    """Sum of `weight * loss(logits, target)` over terms `{"weight": float, "loss": nn.Module}`.

    After each forward, `last_terms` maps each term's name to its unweighted value (detached),
    for logging. A term may carry a `"name"`; otherwise names come from the mapping keys or from
    the loss class (`cross_entropy`, `dice`, ...). A term whose loss has an `ignore_index` and
    sees only ignored pixels contributes 0 (still connected to the graph) instead of calling the
    loss: smp's Focal gives NaN there, Lovasz an empty tensor, and Tversky with gamma < 1 a NaN
    gradient.
    """

    def __init__(self, terms: Any) -> None:
        super().__init__()
        items = _as_items(terms)
        if not items:
            raise ValueError("loss.terms is empty: give at least one {weight, loss} term")
        losses: dict[str, nn.Module] = {}
        weights: dict[str, float] = {}
        for key, term in items:
            if not isinstance(term, (Mapping, DictConfig)) or "loss" not in term:
                raise ValueError(f"each loss term needs a `loss` (and a `weight`), got {term!r}")
            loss = term["loss"]
            if not isinstance(loss, nn.Module):
                raise TypeError(
                    f"loss term {key or ''} must be an nn.Module (give it a _target_), "
                    f"got {type(loss).__name__}"
                )
            weight = float(term.get("weight", 1.0))
            if not math.isfinite(weight) or weight < 0:
                raise ValueError(f"loss term weights must be finite and >= 0, got {weight}")
            name = term.get("name") or key or _term_name(loss, set(losses))
            name = str(name).replace(".", "_")  # ModuleDict keys cannot hold dots
            if name in losses:
                raise ValueError(f"two loss terms are named {name!r}")
            losses[name] = loss
            weights[name] = weight
        self.terms = nn.ModuleDict(losses)
        self.weights = weights
        self.last_terms: dict[str, torch.Tensor] = {}

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Weighted sum of the terms; records each unweighted term in `last_terms`."""
        zero = logits.sum() * 0.0  # keeps the graph (and DDP's used-parameter check) intact
        has_valid: dict[int, bool] = {}
        total = zero
        last: dict[str, torch.Tensor] = {}
        for name, loss in self.terms.items():
            ignore_index = getattr(loss, "ignore_index", None)
            if ignore_index is not None and ignore_index not in has_valid:
                has_valid[ignore_index] = bool((target != ignore_index).any())
            if ignore_index is not None and not has_valid[ignore_index]:
                value = zero
            else:
                value = loss(logits, target)
            total = total + self.weights[name] * value
            last[name] = value.detach()
        self.last_terms = last
        return total

    def extra_repr(self) -> str:
        return ", ".join(f"{name}: {w:g}" for name, w in self.weights.items())
