"""A training job inside a sweep: its objective for the sweeper, and failure without abort.

Hydra's sweepers re-raise a job's exception and stop the whole sweep; in a multirun a failing
job (exception, user error, NaN objective) is instead recorded as a FAILED child run and
reported to the sweeper as None, which Optuna counts as a failed trial. A trial the pruner
stopped ends KILLED with `seglab.trial_state=PRUNED` (the sweeper reads the pruning from the
study's storage). A SLURM job the scheduler stopped stays KILLED (see seglab.run.slurm).
"""

from __future__ import annotations

import functools
import logging
import math
import os
import signal
import traceback
from collections.abc import Callable
from pathlib import Path

import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME
from omegaconf import DictConfig
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.utilities import rank_zero_only

from seglab.errors import user_error
from seglab.run.requeue import slurm_job_id
from seglab.search.job import current_trial, pruned_at
from seglab.tasks.checkpoint import read_checkpoint
from seglab.tracking.run_file import read_run_file
from seglab.tracking.sweep import (
    TRIAL_TAG,
    child_run_name,
    job_number,
    record_child_result,
    sweep_parent,
)

log = logging.getLogger(__name__)

SIGTERM_EXIT = 128 + signal.SIGTERM  # train.py's exit status after a SIGTERM


def in_slurm_job() -> bool:
    return "SLURM_JOB_ID" in os.environ


def slurm_tags() -> dict[str, str]:
    """Which SLURM job ran the child (as squeue/scontrol name it) and how often it was requeued."""
    if not in_slurm_job():
        return {}
    return {
        "seglab.slurm_job_id": slurm_job_id(),
        "seglab.slurm_restarts": os.environ.get("SLURM_RESTART_COUNT", "0"),
    }


def _checkpoint_score(ckpt: ModelCheckpoint) -> float | None:
    """The best score the checkpoint callback kept.

    Under a spawn-started DDP strategy the score stays in the worker process; the main process
    only gets the best checkpoint's path, whose saved callback state holds the score.
    """
    if ckpt.best_model_score is not None:
        return float(ckpt.best_model_score)
    path = Path(ckpt.best_model_path or "")
    if not path.is_file():
        return None
    state = read_checkpoint(path).get("callbacks", {})
    for key, value in state.items():
        if key.startswith("ModelCheckpoint") and value.get("best_model_score") is not None:
            return float(value["best_model_score"])
    return None


def optimized_value(trainer: pl.Trainer, metric: str) -> float:
    """`metric`'s best value when the checkpoint callback monitors it, else its last value."""
    ckpt = trainer.checkpoint_callback
    if isinstance(ckpt, ModelCheckpoint) and ckpt.monitor == metric:
        score = _checkpoint_score(ckpt)
        if score is not None:
            return score
    value = trainer.callback_metrics.get(metric)
    return float(value) if value is not None else math.nan


def _describe(error: BaseException) -> str:
    """The reason recorded on the FAILED run; a user error is named by its own message."""
    if isinstance(error, SystemExit):  # report_user_errors already printed the message
        found = user_error(error.__context__) if error.__context__ else None
        if found is not None:
            return f"{type(found).__name__}: {found}"
        return f"exited with status {error.code} (see the job's log)"
    return f"{type(error).__name__}: {error}"


def sweep_job(fn: Callable[[DictConfig], float | None]) -> Callable[[DictConfig], float | None]:
    """Wrap a task function; a no-op outside multiruns that record to MLflow."""

    @functools.wraps(fn)
    def wrapper(cfg: DictConfig) -> float | None:
        parent = sweep_parent()
        if parent is None:
            return fn(cfg)
        error: str | None = None
        value: float | None = None
        try:
            value = fn(cfg)
        except KeyboardInterrupt:
            raise
        except (Exception, SystemExit) as exc:
            if isinstance(exc, SystemExit) and exc.code in (0, None):
                raise
            if isinstance(exc, SystemExit) and exc.code == SIGTERM_EXIT and in_slurm_job():
                # The scheduler stopped the job (preempted, requeued, cancelled, out of time):
                # the run saved last.ckpt and is KILLED. A requeued job continues it; one
                # ended for good is recorded by the launcher (seglab.run.slurm) with SLURM's
                # reason. No result is returned, so submitit does not see the job as done.
                raise
            error = _describe(exc)
            log.error("job failed, the sweep goes on:\n%s", traceback.format_exc())
        if error is None and (value is None or not math.isfinite(value)):
            error = f"{parent.metric} is {value}"
        if rank_zero_only.rank == 0:
            hydra_cfg = HydraConfig.get()
            run = read_run_file(Path(cfg.paths.output_dir))
            run_id = run["run_id"] if run is not None else None
            number = job_number(hydra_cfg)
            name = child_run_name(parent, list(hydra_cfg.overrides.task), number)
            tags = {"seglab.output_dir": str(cfg.paths.output_dir), MLFLOW_RUN_NAME: name}
            trial = current_trial()  # an Optuna search's job: its trial (pruned or not)
            if trial is not None:
                tags[TRIAL_TAG] = str(number)
            stopped = pruned_at(trial) if error is None else None
            run_id = record_child_result(
                parent, run_id, value, error, run_name=name, tags=tags, pruned_at=stopped
            )
            client = MlflowClient(parent.tracking_uri)
            for key, tag in slurm_tags().items():
                client.set_tag(run_id, key, tag)
        return None if error is not None else value

    return wrapper
