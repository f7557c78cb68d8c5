"""Every use of a library's private API, each behind one small adapter.

Nothing else in seglab touches a private attribute of torch, Lightning, MLflow or Optuna: an upgrade
that moves one breaks here, and `tests/test_compat.py` exercises each adapter against the
installed versions so that it fails with a message naming the attribute instead of a feature
going quietly wrong (a resume that skips an epoch, metrics lost before a checkpoint, a sweep
restarted on every DDP rank, bf16 never chosen).

Written against torch 2.14.1, pytorch-lightning 2.6.6, mlflow 3.17.2 and optuna 5.0.0. The libraries are
imported inside the functions: `seglab.resolvers` uses this module and is imported with
`seglab` itself, which must stay cheap to import.
"""

from __future__ import annotations

from typing import Any


class PrivateAPIError(RuntimeError):
    """A private attribute seglab relies on is gone or changed in the installed library."""


def _missing(library: str, what: str, purpose: str) -> PrivateAPIError:
    import importlib.metadata as metadata

    try:
        version = metadata.version(library)
    except metadata.PackageNotFoundError:  # pragma: no cover - the library is a dependency
        version = "?"
    return PrivateAPIError(
        f"{library} {version}: {what} is gone or changed (seglab.compat was written against "
        f"an older version); {purpose}. Update the adapter in src/seglab/compat.py."
    )


def _private(module: Any, name: str, library: str, purpose: str) -> Any:
    """`module.name`, or a PrivateAPIError naming it and what seglab needs it for."""
    found = getattr(module, name, None)
    if found is None:
        raise _missing(library, f"{module.__name__}.{name}", purpose)
    return found


# --- torch ------------------------------------------------------------------------------------
# torch.cpu has no public "does this CPU do bf16 natively" query. torch 2.14.1.
CPU_BF16_PROBES = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")


def missing_cpu_bf16_probes() -> list[str]:
    """The `torch.cpu` probes of `CPU_BF16_PROBES` the installed torch lacks (tests: [])."""
    import torch

    return [name for name in CPU_BF16_PROBES if not callable(getattr(torch.cpu, name, None))]


def cpu_has_native_bf16() -> bool:
    """True on CPUs with AVX-512 BF16 or AMX tiles (private `torch.cpu` probes, torch 2.14.1).

    A probe the installed torch lacks counts as "no" (32-true is always safe);
    `missing_cpu_bf16_probes` and its test make that loud.
    """
    import torch

    return any(getattr(torch.cpu, name, lambda: False)() for name in CPU_BF16_PROBES)


# --- pytorch-lightning --------------------------------------------------------------------------
def batch_index(trainer: Any) -> int:
    """The training batch index within the epoch: `trainer.fit_loop.epoch_loop.batch_idx`
    (loop internals, pytorch-lightning 2.6.6)."""
    try:
        return int(trainer.fit_loop.epoch_loop.batch_idx)
    except AttributeError as error:
        raise _missing(
            "pytorch-lightning",
            "Trainer.fit_loop.epoch_loop.batch_idx",
            "it names the batch where the loss diverged",
        ) from error


def loggers_write_this_step(trainer: Any) -> bool:
    """Whether Lightning hands this training batch's step metrics to its loggers after it
    (every `log_every_n_steps` stepped batches, when stopping, and every batch under
    `fast_dev_run`): `trainer._logger_connector.should_update_logs`, pytorch-lightning 2.6.6.
    A step value logged on other batches only ever reaches `callback_metrics`."""
    connector = getattr(trainer, "_logger_connector", None)
    should = getattr(type(connector), "should_update_logs", None)
    if not isinstance(should, property):
        raise _missing(
            "pytorch-lightning",
            "Trainer._logger_connector.should_update_logs",
            "the per-step loss is handed to Lightning only on the steps its loggers write",
        )
    return bool(connector.should_update_logs or trainer.fast_dev_run)


def epoch_progress(checkpoint: dict[str, Any]) -> dict[str, dict[str, int]] | None:
    """The fit loop's epoch counters in a checkpoint (`{"total": {...}, "current": {...}}`,
    each with `ready`, `started`, `processed`, `completed`), or None where the checkpoint holds
    none. The layout is `checkpoint["loops"]["fit_loop"]["epoch_progress"]` in
    pytorch-lightning 2.6.6 (tests/test_compat.py checks a real checkpoint still has it)."""
    progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress")
    if not progress:
        return None
    try:
        for part in ("total", "current"):
            for key in ("ready", "started", "completed"):
                int(progress[part][key])
    except (KeyError, TypeError) as error:
        raise _missing(
            "pytorch-lightning",
            "checkpoint['loops']['fit_loop']['epoch_progress'][total|current][ready|started|"
            "completed]",
            "a checkpoint saved between two epochs is resumed from the epoch boundary",
        ) from error
    return progress


def mark_epoch_boundary(checkpoint: dict[str, Any]) -> None:
    """Record a save made between two epochs as "previous epoch done, next not begun".

    Between `increment_ready` and `increment_started` of an epoch (in `on_train_epoch_start`)
    Lightning 2.6 saves a state it restores as "restarted on epoch start", and then skips that
    whole epoch. Nothing of the new epoch has run yet, so the boundary state is the true one.
    """
    progress = epoch_progress(checkpoint)
    if not progress:
        return
    for part in ("total", "current"):
        tracker = progress[part]
        if tracker["ready"] == tracker["started"] + 1 == tracker["completed"] + 1:
            tracker["ready"] -= 1


def subprocess_script_launcher() -> type:
    """Lightning's launcher that starts ranks > 0 by re-running the command
    (`pytorch_lightning.strategies.launchers._SubprocessScriptLauncher`, 2.6.6)."""
    try:
        from pytorch_lightning.strategies.launchers import _SubprocessScriptLauncher
    except ImportError as error:
        raise _missing(
            "pytorch-lightning",
            "pytorch_lightning.strategies.launchers._SubprocessScriptLauncher",
            "a multirun job with DDP must be refused before it starts the sweep on every rank",
        ) from error
    return _SubprocessScriptLauncher


def relaunches_script(launcher: Any) -> bool:
    """True when `launcher` starts the other ranks by re-running the script."""
    return isinstance(launcher, subprocess_script_launcher())


# --- mlflow -----------------------------------------------------------------------------------
def use_tracking_uri(uri: str) -> Any:
    """A context in which MLflow's fluent API (`mlflow.pyfunc.log_model`, `register_model`)
    talks to `uri`, the run's store, and afterwards to whatever it talked to before.

    mlflow 3.17.2's fluent model logging takes no tracking URI of its own; this is
    `mlflow.tracking._tracking_service.utils._use_tracking_uri`.
    """
    from mlflow.tracking._tracking_service import utils

    use = _private(
        utils, "_use_tracking_uri", "mlflow", "a run's model is logged into the run's own store"
    )
    return use(uri)


def requirement_map_builder() -> Any:
    """The function MLflow's `save_model` calls to map every installed module to its package
    before it checks a model's pip requirements against the environment
    (`importlib.metadata.packages_distributions()` over all installed packages: 2-4 s on the
    first model a process logs). Called earlier on a background thread, it takes that time off
    the end of a run. mlflow 3.17.2: `mlflow.utils.requirements_utils._init_packages_to_modules_map`.
    """
    from mlflow.utils import requirements_utils

    return _private(
        requirements_utils,
        "_init_packages_to_modules_map",
        "mlflow",
        "the package map is built while the model is logged (seconds at the end of a run)",
    )


# --- Optuna -----------------------------------------------------------------------------------
# A job reports to the trial its sweeper asked for, found by number: Optuna's public API hands
# out Trial objects only from `study.ask()`. optuna 5.0.0.
def optuna_trial(study: Any, number: int) -> Any:
    """Trial `number` of `study` as an `optuna.Trial` (report, should_prune, set_user_attr)."""
    import optuna

    try:
        study_id = study._study_id
    except AttributeError as error:
        raise _missing("optuna", "Study._study_id", "a job cannot report to its trial") from error
    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study_id, number)
    return optuna.trial.Trial(study, trial_id)
