"""Hydra instantiates launchers only from classes defined in its `hydra_plugins` namespace
package, and imports every module there whenever a Hydra app starts (`--help` and `--cfg` too).
So this declaration stays light: seglab's SLURM launcher (seglab.run.slurm, which imports
MLflow and Lightning) is imported when Hydra builds the launcher, and does all the work."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class SlurmLauncher(Launcher):
    """`hydra/launcher=slurm` (conf/hydra/launcher/slurm.yaml): see seglab.run.slurm."""

    def __init__(self, **params: Any) -> None:
        from seglab.run.slurm import SlurmLauncher as Implementation

        self.implementation = Implementation(**params)

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.implementation.setup(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        return self.implementation.launch(job_overrides, initial_job_idx)
