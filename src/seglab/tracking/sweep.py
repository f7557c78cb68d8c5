"""Hydra multiruns as MLflow nested runs: one parent run per sweep, one child run per job.

The parent is created by a Hydra callback in the launching process; its id is written to
`<sweep dir>/mlflow_sweep.json`, which every job reads (in-process, joblib worker or SLURM node
alike) to start its own run as a child (`mlflow.parentRunId`). At the end of the sweep the
parent records the best child.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import shlex
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME
from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH, MAX_TAG_VAL_LENGTH
from omegaconf import DictConfig

from seglab.errors import ConfigError
from seglab.tracking.naming import slug
from seglab.tracking.store import get_or_create_experiment, resolve_tracking_uri

log = logging.getLogger(__name__)

SWEEP_FILE = "mlflow_sweep.json"  # in the sweep dir: which MLflow run is the sweep's parent
TRIAL_TAG = "seglab.trial"  # on an Optuna search's child: its trial number
STATE_TAG = "seglab.trial_state"  # ... and how the trial ended: COMPLETE, PRUNED or FAIL
STUDY_TAG = "seglab.study"  # on a search's parent: the Optuna study's name
MAX_RUN_NAME = 200
MODES = {"max": "maximize", "min": "minimize"}


@dataclass
class SweepParent:
    """What a job needs to know about its sweep's parent run."""

    run_id: str
    tracking_uri: str
    experiment_id: str
    experiment_name: str
    overrides: list[str]  # the sweep's own overrides (e.g. `model=unet,fpn`)
    metric: str
    mode: str  # max or min

    def save(self, sweep_dir: Path) -> Path:
        sweep_dir.mkdir(parents=True, exist_ok=True)
        path = sweep_dir / SWEEP_FILE
        path.write_text(json.dumps(asdict(self), indent=2))
        return path

    @classmethod
    def load(cls, sweep_dir: Path) -> SweepParent | None:
        path = sweep_dir / SWEEP_FILE
        return cls(**json.loads(path.read_text())) if path.is_file() else None


def sweep_parent() -> SweepParent | None:
    """The running job's sweep parent; None outside a multirun or without the callback."""
    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    return SweepParent.load(Path(hydra_cfg.sweep.dir))


def job_number(hydra_cfg: Any) -> int:
    """The job's number in its sweep: its Optuna trial's number in a search, else Hydra's."""
    trial = (hydra_cfg.get("sweeper") or {}).get("trial")
    return int(trial) if trial is not None else int(hydra_cfg.job.num)


def _fixed_keys(sweep_overrides: list[str]) -> set[str]:
    """Keys the sweep sets to one value for every job (not `a,b`, `choice(...)`, ...)."""
    parsed = OverridesParser.create().parse_overrides(sweep_overrides)
    return {o.key_or_group for o in parsed if not o.is_sweep_override()}


def child_run_name(parent: SweepParent, job_overrides: list[str], job_num: int) -> str:
    """`#<job> <overrides that vary>`, e.g. `#2 model=fpn,loss=ce`.

    Overrides that every job shares (fixed by the sweep's own overrides) are left out.
    """
    fixed = _fixed_keys(parent.overrides)
    parsed = OverridesParser.create().parse_overrides(job_overrides)
    varying = [o.input_line for o in parsed if o.key_or_group not in fixed]
    label = slug(",".join(v for v in varying if v), keep=":/") or "defaults"
    return f"#{job_num} {label}"[:MAX_RUN_NAME]


def child_logger_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Logger arguments adjusted for a sweep job: parent's store and experiment, child name/tags.

    Outside a sweep `kwargs` come back unchanged.
    """
    parent = sweep_parent()
    if parent is None:
        return kwargs
    hydra_cfg = HydraConfig.get()
    job_num = job_number(hydra_cfg)
    tags = {
        **(kwargs.get("tags") or {}),
        MLFLOW_PARENT_RUN_ID: parent.run_id,
        "seglab.sweep_dir": str(hydra_cfg.sweep.dir),
        "seglab.job_num": str(job_num),
    }
    if (hydra_cfg.get("sweeper") or {}).get("trial") is not None:
        tags[TRIAL_TAG] = str(job_num)
    return {
        **kwargs,
        "tracking_uri": parent.tracking_uri,
        "experiment_name": parent.experiment_name,
        "run_name": child_run_name(parent, list(hydra_cfg.overrides.task), job_num),
        "tags": tags,
    }


def objective_key(metric: str) -> str:
    """The metric under which each child and the parent record the optimised value."""
    return f"best/{metric}"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def record_child_result(
    parent: SweepParent,
    run_id: str | None,
    value: float | None,
    error: str | None,
    run_name: str,
    tags: dict[str, str] | None = None,
    pruned_at: int | None = None,
) -> str:
    """Close a job's child run: its objective when it succeeded, FAILED and `seglab.error` if not.

    A job that failed before its run existed gets a FAILED child run of its own, so every
    trial shows up in the sweep. A trial the pruner stopped after epoch `pruned_at` ends KILLED
    with `seglab.trial_state=PRUNED` (and its best value so far). Returns the run id.
    """
    client = MlflowClient(parent.tracking_uri)
    if run_id is None:
        run_tags = {**(tags or {}), MLFLOW_PARENT_RUN_ID: parent.run_id, MLFLOW_RUN_NAME: run_name}
        run_id = client.create_run(parent.experiment_id, tags=run_tags).info.run_id
    trial = (tags or {}).get(TRIAL_TAG)
    if trial is not None:
        client.set_tag(run_id, TRIAL_TAG, trial)
    if error is not None:
        client.set_tag(run_id, "seglab.error", _cut(error, MAX_TAG_VAL_LENGTH))
        if trial is not None:
            client.set_tag(run_id, STATE_TAG, "FAIL")
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
        return run_id
    assert value is not None
    client.log_metric(run_id, objective_key(parent.metric), value)
    if pruned_at is not None:
        client.set_tag(run_id, STATE_TAG, "PRUNED")
        client.set_tag(run_id, "seglab.pruned_at_epoch", str(pruned_at))
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.KILLED))
    elif trial is not None:
        client.set_tag(run_id, STATE_TAG, "COMPLETE")
    return run_id


def fail_interrupted_children(parent: SweepParent, trials: list[int]) -> None:
    """The MLflow children of trials whose sweep was killed: FAILED, not RUNNING for ever; a
    trial killed before its run existed gets a FAILED child, so every trial shows up."""
    client = MlflowClient(parent.tracking_uri)
    wanted = {str(t) for t in trials}
    children = client.search_runs(
        [parent.experiment_id], filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent.run_id}'"
    )
    found = {run.data.tags.get(TRIAL_TAG): run for run in children}
    error = "its sweep was killed while it ran"
    for number in sorted(wanted):
        run = found.get(number)
        if run is None:
            record_child_result(
                parent, None, None, error, f"#{number} (killed)", tags={TRIAL_TAG: number}
            )
        elif run.info.status == "RUNNING":
            record_child_result(
                parent, run.info.run_id, None, error, run.info.run_name, tags={TRIAL_TAG: number}
            )


def _best_child(client: MlflowClient, parent: SweepParent) -> tuple[Any, float] | None:
    key = objective_key(parent.metric)
    children = client.search_runs(
        [parent.experiment_id], filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent.run_id}'"
    )
    scored = [
        (run, run.data.metrics[key])
        for run in children
        if run.info.status == "FINISHED" and math.isfinite(run.data.metrics.get(key, math.nan))
    ]
    if not scored:
        return None
    pick = max if parent.mode == "max" else min
    return pick(scored, key=lambda item: item[1])


def sweep_run_name(overrides: list[str]) -> str:
    """`sweep model=unet,fpn loss=ce,dice`: the parent is named after what the sweep varies.

    A sweep without sweeping overrides (an Optuna search) is named after all of its overrides.
    """
    parsed = OverridesParser.create().parse_overrides(overrides)
    swept = [o.input_line for o in parsed if o.is_sweep_override()] or overrides
    return _cut(f"sweep {' '.join(str(o) for o in swept)}".strip(), MAX_RUN_NAME)


def _sweep_params(config: DictConfig) -> dict[str, str]:
    """The sweep's overrides (`model` → `unet,fpn`) and, for Optuna, its search space."""
    params: dict[str, str] = {}
    for override in config.hydra.overrides.task:
        key, _, value = str(override).partition("=")
        params[key.lstrip("+~")] = value
    sweeper = config.hydra.get("sweeper") or {}
    params["sweeper"] = str(sweeper.get("_target_", "")).rsplit(".", 1)[-1]
    params["launcher"] = str((config.hydra.get("launcher") or {}).get("_target_", "")).rsplit(
        ".", 1
    )[-1]
    for key, value in (sweeper.get("params") or {}).items():
        params[f"search.{key}"] = str(value)
    for key in ("n_trials", "direction"):
        if sweeper.get(key) is not None:
            params[f"sweeper.{key}"] = str(sweeper.get(key))
    return {k: _cut(v, MAX_PARAM_VAL_LENGTH) for k, v in params.items()}


def check_direction(config: DictConfig) -> str:
    """`optimized_mode`, checked against the sweeper's own direction (Optuna's)."""
    mode = str(config.get("optimized_mode", "max"))
    if mode not in MODES:
        raise ConfigError(f"optimized_mode={mode!r}; expected one of {sorted(MODES)}")
    direction = (config.hydra.get("sweeper") or {}).get("direction")
    if isinstance(direction, str) and direction != MODES[mode]:
        raise ConfigError(
            f"hydra.sweeper.direction={direction} but optimized_mode={mode} "
            f"(expects {MODES[mode]}); make them agree"
        )
    return mode


def _reopen(client: MlflowClient, sweep_dir: Path, uri: str) -> SweepParent | None:
    """The parent of a study continued in `sweep_dir` (same store), set RUNNING again."""
    parent = SweepParent.load(sweep_dir)
    if parent is None or parent.tracking_uri != uri:
        return None
    try:
        run = client.get_run(parent.run_id)
    except MlflowException:
        return None
    if run.info.lifecycle_stage == "deleted":
        return None
    if run.info.status != "RUNNING":
        client.update_run(parent.run_id, status="RUNNING")
    if "seglab.error" in run.data.tags:
        client.delete_tag(parent.run_id, "seglab.error")
    return parent


def is_study(config: DictConfig) -> bool:
    """A sweep over a persistent Optuna study (seglab.search), continued by the same command."""
    return (config.hydra.get("sweeper") or {}).get("study_name") is not None


def records_sweep(config: DictConfig) -> bool:
    """Whether the multirun records a parent run: training configs, not fast_dev_run."""
    if "logger" not in config or "paths" not in config:
        return False  # not a training config (eval/predict sweeps record nothing)
    return not config.get("trainer", {}).get("fast_dev_run")  # records nothing, nor its sweep


def _create(config: DictConfig, uri: str, experiment_id: str) -> SweepParent:
    """A new parent run, named after the sweep, with its overrides and space as params."""
    client = MlflowClient(uri)
    overrides = [str(o) for o in config.hydra.overrides.task]
    sweep_dir = Path(str(config.hydra.sweep.dir)).resolve()
    tags = {
        MLFLOW_RUN_NAME: sweep_run_name(overrides),
        "seglab.sweep": "true",
        "seglab.sweep_dir": str(sweep_dir),
        "seglab.command": _cut(shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]), 5000),
    }
    if is_study(config):
        tags[STUDY_TAG] = str(config.hydra.sweeper.study_name)
    run = client.create_run(experiment_id, tags=tags)
    for key, value in _sweep_params(config).items():
        client.log_param(run.info.run_id, key, value)
    log.info("MLflow sweep run %s (%s)", run.info.run_id, uri)
    return SweepParent(
        run_id=run.info.run_id,
        tracking_uri=uri,
        experiment_id=experiment_id,
        experiment_name=str(config.logger.experiment_name),
        overrides=overrides,
        metric=str(config.get("optimized_metric", "val/mIoU")),
        mode=check_direction(config),
    )


def open_sweep_parent(config: DictConfig) -> SweepParent | None:
    """The sweep's parent run, created, or for a study continued in its sweep dir found again.

    Workers of one study that start together take a file lock in the sweep dir, so one of them
    creates the parent and the others find it. None when the multirun records nothing.
    """
    if not records_sweep(config):
        return None
    check_direction(config)  # before anything is recorded
    uri, artifact_location = resolve_tracking_uri(
        config.logger.tracking_uri, config.paths.mlflow_dir
    )
    sweep_dir = Path(str(config.hydra.sweep.dir)).resolve()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    # (a new sqlite store is created by the first client: two at once race in its migrations)
    with FileLock(str(sweep_dir / f"{SWEEP_FILE}.lock")):
        client = MlflowClient(uri)
        experiment_id = get_or_create_experiment(
            client, str(config.logger.experiment_name), artifact_location
        )
        parent = _reopen(client, sweep_dir, uri) if is_study(config) else None
        if parent is not None:
            log.info("continuing the study's MLflow run %s (%s)", parent.run_id, uri)
        else:
            parent = _create(config, uri, experiment_id)
            parent.save(sweep_dir)
    atexit.register(_close_if_running, parent)  # the sweeper raised: do not leave it RUNNING
    return parent


def close_sweep_parent(parent: SweepParent) -> None:
    """Record the best finished child on the parent and end it (FAILED when none finished)."""
    client = MlflowClient(parent.tracking_uri)
    best = _best_child(client, parent)
    if best is not None:
        run, value = best
        client.log_metric(parent.run_id, objective_key(parent.metric), value)
        client.set_tag(parent.run_id, "seglab.best_run_id", run.info.run_id)
        client.set_tag(parent.run_id, "seglab.best_run_name", run.info.run_name)
        log.info("best of the sweep: %s (%s = %.4f)", run.info.run_name, parent.metric, value)
        status = RunStatus.FINISHED
    else:
        client.set_tag(parent.run_id, "seglab.error", "no job of the sweep finished")
        status = RunStatus.FAILED
    client.set_terminated(parent.run_id, RunStatus.to_string(status))


def _close_if_running(parent: SweepParent) -> None:
    client = MlflowClient(parent.tracking_uri)
    if client.get_run(parent.run_id).info.status == "RUNNING":
        client.set_tag(parent.run_id, "seglab.error", "the sweep stopped before its end")
        client.set_terminated(parent.run_id, RunStatus.to_string(RunStatus.FAILED))


class MLflowSweepCallback(Callback):
    """Creates the sweep's parent run at multirun start; records the best child at the end.

    An Optuna study's parent is opened by its sweeper instead (seglab.search.sweeper), once the
    storage and the search space are checked, so a refused search leaves no run behind.
    """

    def __init__(self) -> None:
        self.parent: SweepParent | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not is_study(config):
            self.parent = open_sweep_parent(config)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        parent = self.parent
        if parent is None and is_study(config) and records_sweep(config):
            parent = SweepParent.load(Path(str(config.hydra.sweep.dir)).resolve())
        if parent is not None:
            close_sweep_parent(parent)
