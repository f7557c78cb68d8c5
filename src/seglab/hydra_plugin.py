"""The light declaration Hydra needs for each of seglab's plugins (SLURM launcher, Optuna
sweeper): Hydra instantiates them only from classes in its `hydra_plugins` namespace and imports
every module there whenever an app starts (`--help` and `--cfg` too), so the declaration
imports its implementation (MLflow, Lightning, Optuna) only when Hydra builds the plugin."""

from __future__ import annotations

from typing import Any

from hydra.types import HydraContext, TaskFunction
from hydra.utils import get_class
from omegaconf import DictConfig


class DelegatingPlugin:
    """Builds `implementation` (a dotted class path) with Hydra's parameters and hands it
    `setup`; a subclass adds the plugin kind's own method (`launch`, `sweep`)."""

    implementation_path: str

    def __init__(self, **params: Any) -> None:
        self.implementation = get_class(self.implementation_path)(**params)

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.implementation.setup(
            hydra_context=hydra_context, task_function=task_function, config=config
        )
