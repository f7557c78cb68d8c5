"""The persistent Optuna study behind a search: its storage, its one search space, its trials.

The study lives in an RDB storage (sqlite by default, in the sweep dir), so a search killed half
way is continued by the same command, and several processes (joblib jobs, hand-started workers,
a SLURM array) share it: Optuna hands out trial numbers in the database, atomically.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import optuna
from optuna.pruners import BasePruner, HyperbandPruner, MedianPruner, NopPruner
from optuna.samplers import BaseSampler
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from seglab.compat import optuna_trial
from seglab.errors import ConfigError
from seglab.tracking.secrets import redact_text

STORAGE_FILE = "optuna.db"  # in the sweep dir, when hydra.sweeper.storage is null
SPACE_ATTR = "seglab.search_space"  # study attr: the space the study was started with
WORKER_ATTR = "seglab.worker"  # trial attr: host:pid of the sweeper that asked it
# A trial is asked and its worker recorded in two writes, milliseconds apart: a RUNNING trial
# still without a worker this long after it started lost its sweeper in between.
UNRECORDED_WORKER_GRACE = timedelta(seconds=5)
PRUNED_ATTR = "seglab.pruned_at_epoch"  # trial attr: set by the job when the pruner stopped it
SQLITE_TIMEOUT_S = 60  # concurrent writers wait for sqlite's lock instead of failing
PRUNERS: dict[str, type[BasePruner]] = {
    "median": MedianPruner,
    "hyperband": HyperbandPruner,
    "none": NopPruner,
}


def storage_url(storage: str | None, sweep_dir: str | Path) -> str:
    """`hydra.sweeper.storage`, or the sqlite file `optuna.db` in the sweep dir."""
    if storage:
        return str(storage)
    return f"sqlite:///{Path(sweep_dir).resolve() / STORAGE_FILE}"


def open_storage(url: str) -> RDBStorage:
    """The storage at `url`; one ConfigError naming it when it cannot be opened."""
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}}
    try:
        return RDBStorage(url, engine_kwargs=kwargs)
    except Exception as error:  # noqa: BLE001 - drivers raise anything; the user needs the URL
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ConfigError(
            f"hydra.sweeper.storage={redact_text(url)!r} cannot be opened "
            f"({type(error).__name__}: {redact_text(reason)}); check the URL, the server and its "
            "driver (postgresql: psycopg2), or leave storage null for the sweep dir's sqlite file"
        ) from None


def build_pruner(name: str, options: Mapping[str, Any] | None = None) -> BasePruner:
    """`hparams_search.pruner`: median | hyperband | none; `options[name]`: the Optuna pruner's
    keyword arguments (`hydra.sweeper.pruner_options.median.n_startup_trials=...`)."""
    if name not in PRUNERS:
        raise ConfigError(f"hparams_search.pruner={name!r}; expected one of {sorted(PRUNERS)}")
    kwargs = dict((options or {}).get(name) or {})
    try:
        return PRUNERS[name](**kwargs)
    except TypeError as error:
        raise ConfigError(f"hydra.sweeper.pruner_options.{name}: {error}") from None


def open_study(
    storage: RDBStorage,
    name: str,
    direction: str,
    sampler: BaseSampler | None = None,
    pruner: BasePruner | None = None,
) -> optuna.Study:
    """The study `name`, created on first use; an existing one must optimise the same way."""
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        direction=direction,
        sampler=sampler,
        pruner=pruner,
        load_if_exists=True,
    )
    found = study.direction.name.lower()
    if found != direction:
        raise ConfigError(
            f"study {name!r} was started with direction={found}, not {direction}; "
            "choose another hydra.sweeper.study_name"
        )
    return study


def claim_space(study: optuna.Study, signature: str) -> None:
    """Record the study's search space, or refuse a different one: a study must not mix two."""
    known = study.user_attrs.get(SPACE_ATTR)
    if known is None:
        study.set_user_attr(SPACE_ATTR, signature)
    elif known != signature:
        raise ConfigError(
            f"study {study.study_name!r} was started with another search space "
            f"({known}); now: {signature}. Keep its space, or start a new study with "
            "hydra.sweeper.study_name=<new name>"
        )


def worker_id() -> str:
    """This process, as recorded on the trials it asks."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(worker: str) -> bool:
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname():
        return True  # another node's worker: its own node knows; left alone
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


def fail_interrupted(study: optuna.Study) -> list[int]:
    """Mark FAIL the RUNNING trials whose sweeper process on this host is gone (killed), and
    those whose sweeper was killed between asking them and recording itself on them.

    Returns their numbers. Trials of live workers (here or on other nodes) are left running.
    """
    failed = []
    now = datetime.now()  # Optuna's trial times are naive local times
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get(WORKER_ATTR)
        if worker is None:
            started = trial.datetime_start
            abandoned = started is not None and now - started > UNRECORDED_WORKER_GRACE
        else:
            abandoned = not _alive(str(worker))
        if abandoned:
            study.tell(trial.number, state=TrialState.FAIL)
            failed.append(trial.number)
    return failed


def job_trial(storage: str, study_name: str, number: int, pruner: BasePruner) -> optuna.Trial:
    """Trial `number` of the study, as a job (in this process, or another one or node) sees it."""
    study = optuna.load_study(study_name=study_name, storage=open_storage(storage), pruner=pruner)
    return optuna_trial(study, number)


def was_pruned(study: optuna.Study, number: int) -> bool:
    """Whether the job of trial `number` was stopped by the pruner."""
    trials = [t for t in study.get_trials(deepcopy=False) if t.number == number]
    return bool(trials) and PRUNED_ATTR in trials[0].user_attrs
