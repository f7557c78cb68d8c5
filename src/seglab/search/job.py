"""A job's side of an Optuna search: its trial, found through the shared storage.

The sweeper passes each job its trial number as `hydra.sweeper.trial`; with the storage URL and
study name from the same `hydra.sweeper` config, a job in the sweeper's process, in a joblib
worker or on a SLURM node reaches the same trial.
"""

from __future__ import annotations

import optuna
from hydra.core.hydra_config import HydraConfig

from seglab.search.study import PRUNED_ATTR, build_pruner, job_trial, storage_url


def current_trial() -> optuna.Trial | None:
    """This job's trial; None outside an Optuna search (a grid sweep, a single run)."""
    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    sweeper = hydra_cfg.get("sweeper") or {}
    if sweeper.get("trial") is None or sweeper.get("study_name") is None:
        return None
    pruner = build_pruner(str(sweeper.get("pruner", "none")), sweeper.get("pruner_options"))
    url = storage_url(sweeper.get("storage"), hydra_cfg.sweep.dir)
    return job_trial(url, str(sweeper.study_name), int(sweeper.trial), pruner)


def pruned_at(trial: optuna.Trial | None) -> int | None:
    """The epoch after which the pruner stopped the trial; None when it ran to its end."""
    if trial is None:
        return None
    epoch = trial.study.get_trials(deepcopy=False)[trial.number].user_attrs.get(PRUNED_ATTR)
    return int(epoch) if epoch is not None else None
