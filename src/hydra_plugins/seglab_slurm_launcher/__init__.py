"""Hydra instantiates launchers only from classes defined in its `hydra_plugins` namespace
package: seglab's SLURM launcher (seglab.run.slurm) is declared here for it."""

from seglab.run import slurm


class SlurmLauncher(slurm.SlurmLauncher):
    """`hydra/launcher=slurm` (conf/hydra/launcher/slurm.yaml): see seglab.run.slurm."""
