"""`hydra/launcher=slurm`, declared where Hydra looks for launchers (see seglab.hydra_plugin)."""

from __future__ import annotations

from collections.abc import Sequence

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher

from seglab.hydra_plugin import DelegatingPlugin


class SlurmLauncher(DelegatingPlugin, Launcher):
    """conf/hydra/launcher/slurm.yaml: see seglab.run.slurm."""

    implementation_path = "seglab.run.slurm.SlurmLauncher"

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        return self.implementation.launch(job_overrides, initial_job_idx)
