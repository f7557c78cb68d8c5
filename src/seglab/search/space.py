"""A search space written as Hydra overrides (`optim.lr=tag(log, interval(1e-4, 1e-2))`), as
Optuna distributions.

The syntax is the one hydra-optuna-sweeper documented, so configs and command lines written for
it keep working: `choice(...)` → categorical, `range(...)` → int/float steps, `interval(...)` →
float (`tag(int, ...)`: int; `tag(log, ...)`: log scale).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    ChoiceSweep,
    IntervalSweep,
    Override,
    RangeSweep,
    Transformer,
)
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
)

from seglab.errors import ConfigError


@dataclass
class SearchSpace:
    """What a study samples (`distributions`) and what every trial shares (`fixed` overrides)."""

    distributions: dict[str, BaseDistribution]
    fixed: list[str]

    def signature(self) -> str:
        """A canonical text of the sampled space: a study refuses a second, different one."""
        return json.dumps(
            {k: json.loads(distribution_to_json(d)) for k, d in sorted(self.distributions.items())},
            sort_keys=True,
        )

    def overrides(self, params: Mapping[str, object]) -> list[str]:
        """A trial's command-line overrides: the shared ones, then its sampled values."""
        return [*self.fixed, *(f"{key}={value}" for key, value in params.items())]


def distribution(override: Override) -> BaseDistribution:
    """The Optuna distribution of one sweep override."""
    value = override.value()
    if isinstance(value, ChoiceSweep) or (isinstance(value, RangeSweep) and value.shuffle):
        return CategoricalDistribution(
            list(override.sweep_iterator(transformer=Transformer.encode))
        )
    if isinstance(value, RangeSweep):
        if any(isinstance(v, float) for v in (value.start, value.stop, value.step)):
            # Hydra's range excludes its stop, Optuna's high is inclusive.
            high = value.stop - value.step
            return FloatDistribution(value.start, high, step=value.step)
        return IntDistribution(
            int(value.start), int(value.stop) - int(value.step), step=int(value.step)
        )
    if isinstance(value, IntervalSweep):
        log = "log" in value.tags
        if "int" in value.tags:
            return IntDistribution(int(value.start), int(value.end), log=log)
        return FloatDistribution(float(value.start), float(value.end), log=log)
    raise ConfigError(
        f"{override.input_line}: an Optuna search takes choice(...), range(...) or interval(...)"
    )


def search_space(params: Mapping[str, str] | None, arguments: Sequence[str]) -> SearchSpace:
    """The space from `hydra.sweeper.params` and the command line (which wins per key)."""
    lines = [f"{key}={value}" for key, value in (params or {}).items()]
    parsed = OverridesParser.create().parse_overrides([*lines, *arguments])
    by_key: dict[str, Override] = {}
    for override in parsed:
        by_key[override.get_key_element()] = override  # later (command line) wins
    distributions = {}
    fixed = []
    for key, override in by_key.items():
        if override.is_sweep_override():
            distributions[key] = distribution(override)
        else:
            fixed.append(override.input_line)
    return SearchSpace(distributions, fixed)


def check_keys(space: SearchSpace, config: DictConfig, groups: Sequence[str]) -> None:
    """Every searched key must exist in the composed config (or be a config group), so a typo
    stops the search before its first trial instead of failing every trial."""
    for key in space.distributions:
        name = key.lstrip("+~")
        if key.startswith("+") or name in groups:
            continue
        if OmegaConf.select(config, name, default=_ABSENT) is _ABSENT:
            raise ConfigError(
                f"the search space names {name!r}, which is no key of the config; check its "
                "spelling (hydra.sweeper.params or the command line), or add it with +"
            )


_ABSENT = object()
