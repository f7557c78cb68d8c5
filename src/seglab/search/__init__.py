"""Optuna searches: the search space, the persistent study, the Hydra sweeper that drives it."""
