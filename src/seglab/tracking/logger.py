"""Lightning's MLFlowLogger with seglab's param handling."""

from __future__ import annotations

import re
import time
import warnings
from argparse import Namespace
from collections.abc import Callable, Mapping
from typing import Any

import pytorch_lightning as pl
from mlflow.entities import Metric, Param
from PIL import Image
from pytorch_lightning.loggers import MLFlowLogger
from pytorch_lightning.utilities import rank_zero_only

from seglab.tracking.params import to_mlflow_params
from seglab.tracking.secrets import redact_params

MAX_PARAMS_PER_BATCH = 100  # MLflow's log_batch limit


class SeglabMLFlowLogger(MLFlowLogger):
    """Logs the flattened resolved config; values over MLflow's limit are cut, not fatal.

    Lightning's own logger cuts every value to 250 characters and keeps Hydra's `_target_` keys.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # What the store refused during the run (uploads, closing it), for the end-of-run summary.
        self.store_errors: list[str] = []
        # Batches handed to MLflow's asynchronous queue and not yet known to be stored: `flush`
        # waits for exactly these. (MLflow's own flush restarts its logging threads: ~0.5 s
        # even with an empty queue, twice per epoch before each checkpoint.)
        self._pending: list[Any] = []

    def _log_batch(self, **batch: Any) -> None:
        operations = self.experiment.log_batch(
            run_id=self.run_id, **batch, **self._log_batch_kwargs
        )
        if operations is not None:  # asynchronous: a handle to wait on
            self._pending.append(operations)

    def __getstate__(self) -> dict[str, Any]:
        """Picklable for `ddp_spawn` (DDP inside a multirun): the queued batches are waited for
        here, since their handles hold locks and belong to this process's queue."""
        self.flush()
        return {**self.__dict__, "_pending": []}

    @property
    def tracking_uri(self) -> str:
        """Where this run is recorded."""
        return self._tracking_uri

    @rank_zero_only
    def log_hyperparams(self, params: Mapping[str, Any] | Namespace) -> None:
        if isinstance(params, Namespace):
            params = vars(params)
        items = [Param(k, v) for k, v in redact_params(to_mlflow_params(params)).items()]
        for start in range(0, len(items), MAX_PARAMS_PER_BATCH):
            self._log_batch(params=items[start : start + MAX_PARAMS_PER_BATCH])

    @rank_zero_only
    def log_artifact(self, local_path: str, artifact_path: str | None = None) -> None:
        """Upload a file into this run's artifacts; a store failure warns, the file stays put."""
        try:
            self.experiment.log_artifact(self.run_id, local_path, artifact_path)
        except Exception as error:  # noqa: BLE001 - a tracking outage must not end training
            self.store_errors.append(f"storing {local_path}: {type(error).__name__}")
            warnings.warn(
                f"MLflow could not store {local_path} ({type(error).__name__}: {error}); "
                "the file itself is kept",
                stacklevel=2,
            )

    @rank_zero_only
    def log_image_step(self, local_path: str, key: str, step: int) -> None:
        """A PNG as step `step` of the run's image series `key` (the UI's image slider); a
        store failure warns, like `log_artifact`."""
        try:
            with Image.open(local_path) as image:
                self.experiment.log_image(self.run_id, image.convert("RGB"), key=key, step=step)
        except Exception as error:  # noqa: BLE001 - a tracking outage must not end training
            self.store_errors.append(f"storing image {key} step {step}: {type(error).__name__}")
            warnings.warn(
                f"MLflow could not store image {key} at step {step} "
                f"({type(error).__name__}: {error}); the file itself is kept",
                stacklevel=2,
            )

    # --- robustness: resume into the same run, final status, flushing -------------------------

    # Status the run gets when Lightning finalizes it as "failed" (e.g. "KILLED" after an interrupt).
    failed_status: str = "FAILED"
    # {metric key: steps already in the store}; a resumed run skips those points (no duplicates).
    logged_steps: dict[str, set[int]] | None = None

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if self.logged_steps:
            metrics = {
                k: v for k, v in metrics.items() if (step or 0) not in self.logged_steps.get(k, ())
            }
            if not metrics:
                return
        # Lightning's log_metrics (prefix, names cleaned of what MLflow refuses), keeping the
        # handle of the asynchronous batch for `flush`.
        if self._prefix:
            metrics = {f"{self._prefix}{self.LOGGER_JOIN_CHAR}{k}": v for k, v in metrics.items()}
        timestamp_ms = int(time.time() * 1000)
        batch = []
        for key, value in metrics.items():
            if isinstance(value, str):
                warnings.warn(f"Discarding metric with string value {key}={value}.", stacklevel=2)
                continue
            name = re.sub("[^a-zA-Z0-9_/. -]+", "", key)
            if name != key:
                warnings.warn(
                    f"MLflow only allows '_', '/', '.' and ' ' special characters in metric "
                    f"names; {key} logged as {name}",
                    RuntimeWarning,
                    stacklevel=2,
                )
            batch.append(Metric(key=name, value=value, timestamp=timestamp_ms, step=step or 0))
        self._log_batch(metrics=batch)

    def take_pending(self) -> Callable[[], None]:
        """The batches queued so far, detached from this logger: a function that waits until
        they are stored (a store failure raises there), callable from any thread, e.g. the
        checkpoint writer's before it writes."""
        pending, self._pending = self._pending, []

        def wait_until_stored() -> None:
            for operations in pending:
                operations.wait()

        return wait_until_stored

    @rank_zero_only
    def flush(self) -> None:
        """Wait until the metrics and params queued for asynchronous logging are stored; a
        store failure raises here."""
        self.take_pending()()

    @rank_zero_only
    def finalize(self, status: str = "success") -> None:
        """Lightning's finalize, with `failed_status` honoured and a store outage only warned."""
        if status == "failed":
            status = self.failed_status
        try:
            self.flush()
            super().finalize(status)
        except Exception as error:  # noqa: BLE001 - checkpoints are on disk already
            self.store_errors.append(f"closing the run: {type(error).__name__}")
            warnings.warn(
                f"MLflow could not close run {self._run_id} ({type(error).__name__}: {error})",
                stacklevel=2,
            )


def find_mlflow_logger(trainer: pl.Trainer) -> SeglabMLFlowLogger | None:
    """The trainer's seglab MLflow logger, None when it has none (e.g. fast_dev_run)."""
    return next((lg for lg in trainer.loggers if isinstance(lg, SeglabMLFlowLogger)), None)
