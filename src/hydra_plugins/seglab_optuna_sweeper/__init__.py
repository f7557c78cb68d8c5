"""`hydra/sweeper=optuna`, declared where Hydra looks for sweepers (see seglab.hydra_plugin)."""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper

from seglab.hydra_plugin import DelegatingPlugin


class OptunaSweeper(DelegatingPlugin, Sweeper):
    """conf/hydra/sweeper/optuna.yaml: see seglab.search.sweeper."""

    implementation_path = "seglab.search.sweeper.OptunaSweeper"

    def sweep(self, arguments: list[str]) -> Any:
        return self.implementation.sweep(arguments)
