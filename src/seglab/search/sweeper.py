"""seglab's Hydra sweeper for Optuna searches (`python train.py -m hparams_search=optuna`).

Why seglab's own, not hydra-optuna-sweeper: its 1.3 release pins optuna<3 (in-memory studies
only, under SQLAlchemy 2), and its 1.4 release candidate, which moves to Optuna 5, still has no
pruning, no resumable `n_trials` and no guard against a second search space on one study. This
sweeper is the ask-and-tell loop on a persistent study, with Hydra's launchers running the jobs:

- the study is stored (default: `optuna.db` in the sweep dir) and continued by the same command;
  `n_trials` counts all of its trials; a trial whose sweeper died is marked FAIL first;
- trials are asked in batches of `n_jobs` (TPE with constant_liar, so a batch, or another
  worker, does not sample the points already running) and launched by `hydra/launcher`;
- each job finds its trial by number (`hydra.sweeper.trial`) through the storage, reports
  `optimized_metric` per epoch, and stops when the pruner says so (seglab.callbacks.pruning).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import hydra.utils
import optuna
from filelock import FileLock
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from seglab.errors import report_user_errors
from seglab.search.space import SearchSpace, check_keys, search_space
from seglab.search.study import (
    WORKER_ATTR,
    build_pruner,
    claim_space,
    fail_interrupted,
    open_storage,
    open_study,
    storage_url,
    was_pruned,
    worker_id,
)
from seglab.tracking.sweep import fail_interrupted_children, open_sweep_parent

log = logging.getLogger(__name__)
RESULTS_FILE = "optimization_results.yaml"  # in the sweep dir: the best trial so far
LOCK_FILE = "optuna.db.lock"  # in the sweep dir: held while a worker opens the study


class OptunaSweeper(Sweeper):
    """Ask-and-tell over a persistent Optuna study; each trial is one job of Hydra's launcher."""

    def __init__(
        self,
        direction: str = "maximize",
        study_name: str = "seglab",
        storage: str | None = None,
        n_trials: int = 20,
        n_jobs: int = 1,
        sampler: Any = None,
        pruner: str = "none",
        pruner_options: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        trial: int | None = None,  # set for each job: which trial it is (None in the sweeper)
    ) -> None:
        self.direction = direction
        self.study_name = study_name
        self.storage = storage
        self.n_trials = n_trials
        self.n_jobs = max(1, n_jobs)
        self.sampler_cfg = sampler
        self.pruner_name = pruner
        self.pruner_options = dict(pruner_options or {})
        self.params = dict(params or {})
        self.config: DictConfig | None = None
        self.launcher: Any = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def open(self, arguments: Sequence[str]) -> tuple[optuna.Study, SearchSpace]:
        """The study and its space, checked: storage reachable, keys real, space unchanged."""
        assert self.config is not None
        space = search_space(self.params, arguments)
        check_keys(space, self.config, list(self.config.hydra.runtime.choices))
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        storage = open_storage(storage_url(self.storage, sweep_dir))
        sampler = self.sampler_cfg  # Hydra instantiated it with the sweeper (recursively)
        if sampler is not None and not isinstance(sampler, optuna.samplers.BaseSampler):
            sampler = hydra.utils.instantiate(sampler)
        pruner = build_pruner(self.pruner_name, self.pruner_options)
        study = open_study(storage, self.study_name, self.direction, sampler, pruner)
        claim_space(study, space.signature())
        return study, space

    @report_user_errors  # a refused search: one line, exit status 2, no trial, no MLflow run
    def sweep(self, arguments: list[str]) -> None:
        assert self.config is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        # Workers starting together: one creates the study's tables (sqlite schema migrations
        # race otherwise), the others find them.
        with FileLock(str(sweep_dir / LOCK_FILE)):
            study, space = self.open(arguments)
        parent = open_sweep_parent(self.config)  # the MLflow parent: found again when continuing
        interrupted = fail_interrupted(study)
        if interrupted:
            log.warning("trials %s were running when their sweep died: marked failed", interrupted)
            if parent is not None:
                fail_interrupted_children(parent, interrupted)
        while trials := self.ask(study, space, sweep_dir):
            batch = [
                [*space.overrides(trial.params), f"hydra.sweeper.trial={trial.number}"]
                for trial in trials
            ]
            returns = self.launcher.launch(batch, initial_job_idx=trials[0].number)
            for trial, ret in zip(trials, returns, strict=True):
                self.tell(study, trial.number, ret)
        self.write_results(study, sweep_dir)

    def ask(self, study: optuna.Study, space: SearchSpace, sweep_dir: Path) -> list[optuna.Trial]:
        """The next batch: up to `n_jobs` trials, none past `n_trials` in all. Under the lock,
        so two workers that count at the same moment do not both take the last trial."""
        with FileLock(str(sweep_dir / LOCK_FILE)):
            remaining = self.n_trials - len(study.get_trials(deepcopy=False))
            trials = [study.ask(space.distributions) for _ in range(min(self.n_jobs, remaining))]
            for trial in trials:
                trial.set_user_attr(WORKER_ATTR, worker_id())
        return trials

    def tell(self, study: optuna.Study, number: int, ret: JobReturn) -> None:
        """The job's outcome as the trial's state: COMPLETE (its value), PRUNED or FAIL."""
        value = ret.return_value if ret.status == JobStatus.COMPLETED else None
        if was_pruned(study, number):
            study.tell(number, state=TrialState.PRUNED)
        elif isinstance(value, int | float) and math.isfinite(value):
            study.tell(number, float(value))
        else:
            study.tell(number, state=TrialState.FAIL)

    def write_results(self, study: optuna.Study, sweep_dir: Path) -> None:
        """The best trial so far into `optimization_results.yaml` (the former plugin's file)."""
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not done:
            log.warning("study %r has no completed trial", study.study_name)
            return
        best = study.best_trial
        results = {
            "name": "optuna",
            "study_name": study.study_name,
            "best_trial": best.number,
            "best_params": best.params,
            "best_value": best.value,
            "n_trials": len(study.get_trials(deepcopy=False)),
        }
        OmegaConf.save(OmegaConf.create(results), sweep_dir / RESULTS_FILE)
        log.info("best trial #%d: %s = %s", best.number, best.params, best.value)
