"""Weighted sum of loss terms, so every loss config has the same shape and terms can be added."""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig
from torch import nn

from seglab.errors import ConfigError


def _term_name(loss: nn.Module, taken: set[str]) -> str:
    """A readable, unique key for a term: the class name without `Loss`, snake-cased."""
    base = re.sub(r"Loss$", "", type(loss).__name__) or type(loss).__name__
    base = re.sub(r"(?<!^)(?=[A-Z])", "_", base).lower()
    name, i = base, 1
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    return name


def takes_class_weights(loss: nn.Module) -> bool:
    """Whether `loss` weighs classes by a `class_weights` it was built with: seglab's
    CrossEntropyLoss, and smp's Focal, Dice, Jaccard and Tversky losses (smp >= 0.6) unless
    binary. Not smp's Lovasz, nor any loss whose constructor has no `class_weights`."""
    try:
        params = inspect.signature(type(loss)).parameters
    except (TypeError, ValueError):
        return False
    return (
        "class_weights" in params
        and hasattr(loss, "class_weights")
        and getattr(loss, "mode", None) != "binary"
    )


def _class_weights(value: Any) -> list[float] | None:
    """`loss.class_weights` as floats, checked; None stays None (unweighted)."""
    if value is None:
        return None
    if isinstance(value, str):
        raise ConfigError(
            f"loss.class_weights={value!r}: give one weight per class (loss.class_weights=[1,1,5]) "
            "or auto, which train.py turns into median-frequency weights of the training split"
        )
    try:
        weights = [float(w) for w in value]
    except (TypeError, ValueError) as error:
        raise ConfigError(f"loss.class_weights must be a list of numbers, got {value!r}") from error
    if not all(math.isfinite(w) and w >= 0 for w in weights) or not sum(weights) > 0:
        raise ConfigError(f"loss.class_weights must be finite, >= 0 and not all 0, got {value!r}")
    return weights


@dataclass(frozen=True)
class Ramp:
    """A term weight that moves linearly with training progress (0 at the first step, 1 at the
    last): the factor `start` at 0, `end` from `until` on. Kervadec et al. raise the boundary
    loss's weight this way (0.01 more per epoch); progress, not epochs, so the schedule keeps
    its shape whatever the run's length."""

    start: float
    end: float = 1.0
    until: float = 1.0

    @classmethod
    def from_config(cls, name: str, value: Any) -> Ramp | None:
        """A checked ramp from a term's `ramp: {start, end, until}`; None stays None."""
        if value is None:
            return None
        if not isinstance(value, (Mapping, DictConfig)) or "start" not in value:
            raise ConfigError(
                f"loss term {name!r}: ramp={value!r}; expected {{start: .., end: .., until: ..}}"
            )
        unknown = sorted(set(value) - {"start", "end", "until"})
        if unknown:
            raise ConfigError(f"loss term {name!r}: unknown ramp keys {unknown}")
        ramp = cls(
            float(value["start"]), float(value.get("end", 1.0)), float(value.get("until", 1.0))
        )
        if min(ramp.start, ramp.end) < 0 or not 0 < ramp.until <= 1:
            raise ConfigError(
                f"loss term {name!r}: ramp start/end must be >= 0 and until in (0, 1], got {ramp}"
            )
        return ramp

    def factor(self, progress: float) -> float:
        """The weight factor at `progress` (the share of training steps done)."""
        share = min(max(progress / self.until, 0.0), 1.0)
        return self.start + (self.end - self.start) * share


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

    `class_weights` (one weight per class: `loss.class_weights` in every loss config) is the one
    place a compound loss is weighted by class: each term that takes per-class weights
    (`takes_class_weights`: CE weighs pixels, smp's Focal/Dice/Jaccard/Tversky take a weighted
    mean of their per-class losses) is given them; a loss none of whose terms can (Lovasz) is a
    ConfigError rather than silently unweighted.

    A term may carry a `ramp: {start, end, until}` (`Ramp`): its weight is then multiplied by a
    factor moving linearly with training progress, which the task sets each step
    (`set_progress`). A loss built outside training (eval.py) is at progress 1: the weights a
    finished run ended with.
    """

    def __init__(self, terms: Any, class_weights: Any = None) -> None:
        super().__init__()
        items = _as_items(terms)
        if not items:
            raise ValueError("loss.terms is empty: give at least one {weight, loss} term")
        losses: dict[str, nn.Module] = {}
        weights: dict[str, float] = {}
        ramps: dict[str, Ramp] = {}
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
            ramp = Ramp.from_config(name, term.get("ramp"))
            if ramp is not None:
                ramps[name] = ramp
        self.terms = nn.ModuleDict(losses)
        self.weights = weights
        self.ramps = ramps
        self.progress = 1.0
        self.last_terms: dict[str, torch.Tensor] = {}
        self.class_weights = _class_weights(class_weights)
        self.weighted_terms: tuple[str, ...] = ()
        if self.class_weights is not None:
            self.weighted_terms = self._give_class_weights(self.class_weights)

    def _give_class_weights(self, class_weights: list[float]) -> tuple[str, ...]:
        """Hand `class_weights` to every term that takes them; the names of those terms."""
        takers = [name for name, loss in self.terms.items() if takes_class_weights(loss)]
        if not takers:
            terms = ", ".join(
                f"{name} ({type(loss).__module__}.{type(loss).__name__})"
                for name, loss in self.terms.items()
            )
            raise ConfigError(
                f"loss.class_weights is set, but no term of this loss can take per-class weights: "
                f"{terms}. CE, focal, dice, jaccard and tversky can (loss=ce, ce_dice, focal, "
                "dice, ...); use one of them or set loss.class_weights=null"
            )
        for name in takers:
            loss = self.terms[name]
            if loss.class_weights is not None:
                raise ConfigError(
                    f"loss.class_weights and the class weights of loss term {name!r} are both "
                    "set; give them once, as loss.class_weights"
                )
            # A registered buffer (seglab's CE) stays one: it follows .to() and the checkpoint.
            loss.class_weights = torch.tensor(class_weights, dtype=torch.float32)
        return tuple(takers)

    def set_progress(self, progress: float) -> None:
        """The share of training done (0..1), which ramped term weights follow."""
        self.progress = float(progress)

    def current_weights(self) -> dict[str, float]:
        """Each term's weight now: its `weight`, times its ramp's factor at the progress."""
        return {
            name: weight * (self.ramps[name].factor(self.progress) if name in self.ramps else 1.0)
            for name, weight in self.weights.items()
        }

    def ramped_weights(self) -> dict[str, float]:
        """The current weight of each ramped term (logged as train/loss_weight/<term>)."""
        return {name: w for name, w in self.current_weights().items() if name in self.ramps}

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Weighted sum of the terms; records each unweighted term in `last_terms`."""
        if self.class_weights is not None and len(self.class_weights) != logits.size(1):
            raise ValueError(
                f"loss.class_weights has {len(self.class_weights)} entries but the model predicts "
                f"{logits.size(1)} classes; give one weight per class"
            )
        zero = logits.sum() * 0.0  # keeps the graph (and DDP's used-parameter check) intact
        has_valid: dict[int, bool] = {}
        total = zero
        last: dict[str, torch.Tensor] = {}
        weights = self.current_weights()
        for name, loss in self.terms.items():
            ignore_index = getattr(loss, "ignore_index", None)
            if ignore_index is not None and ignore_index not in has_valid:
                has_valid[ignore_index] = bool((target != ignore_index).any())
            if ignore_index is not None and not has_valid[ignore_index]:
                value = zero
            else:
                value = loss(logits, target)
            total = total + weights[name] * value
            last[name] = value.detach()
        self.last_terms = last
        return total

    def extra_repr(self) -> str:
        text = ", ".join(
            f"{name}: {w:g}" + (f" ramp {self.ramps[name]}" if name in self.ramps else "")
            for name, w in self.weights.items()
        )
        if self.weighted_terms:
            text += f", class_weights -> {', '.join(self.weighted_terms)}"
        return text
