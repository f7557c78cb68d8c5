"""Hydra instantiates sweepers only from classes defined in its `hydra_plugins` namespace
package: seglab's Optuna sweeper (seglab.search.sweeper) is declared here for it."""

from seglab.search import sweeper


class OptunaSweeper(sweeper.OptunaSweeper):
    """`hydra/sweeper=optuna` (conf/hydra/sweeper/optuna.yaml): see seglab.search.sweeper."""
