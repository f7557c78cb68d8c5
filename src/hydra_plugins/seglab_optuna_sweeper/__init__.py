"""Hydra instantiates sweepers only from classes defined in its `hydra_plugins` namespace
package, and imports every module there whenever a Hydra app starts (`--help` and `--cfg` too).
So this declaration stays light: seglab's Optuna sweeper (seglab.search.sweeper, which imports
Optuna and MLflow) is imported when Hydra builds the sweeper, and does all the work."""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class OptunaSweeper(Sweeper):
    """`hydra/sweeper=optuna` (conf/hydra/sweeper/optuna.yaml): see seglab.search.sweeper."""

    def __init__(self, **params: Any) -> None:
        from seglab.search.sweeper import OptunaSweeper as Implementation

        self.implementation = Implementation(**params)

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.implementation.setup(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        return self.implementation.sweep(arguments)
