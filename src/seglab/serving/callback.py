"""At the end of training (rank 0), the best checkpoint becomes the run's MLflow model, and with
`logger.register_model=<name>` a new version of `<name>` (see registry.py).

Also on a run continued with `resume=`: ModelCheckpoint's best path comes back with last.ckpt.
A store that fails while the model is logged is a warning in the end-of-run summary
(`SeglabMLFlowLogger.store_errors`), as for artifacts: the checkpoint stays on disk.
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path

import pytorch_lightning as pl
from mlflow import MlflowClient
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from rich.console import Console

from seglab.checkpoint_io import wait_for_checkpoints
from seglab.compat import PrivateAPIError, requirement_map_builder
from seglab.serving.log_model import log_run_model
from seglab.serving.registry import check_registrable, register_run_model
from seglab.tracking.logger import find_mlflow_logger

SCORE_METRIC = "val/mIoU"


class LogRunModel(Callback):
    """`enabled`: log the model at all (logger.log_model); `register_as`: the registered model's
    name (logger.register_model), None for none."""

    def __init__(self, enabled: bool = True, register_as: str | None = None) -> None:
        self.enabled = enabled
        self.register_as = register_as or None
        self._requirement_map: threading.Thread | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """A name holding other classes is refused before training, not after it; MLflow's
        package map (seconds) is built on a background thread while the model trains."""
        logger = find_mlflow_logger(trainer)
        if not (self.enabled and logger is not None and trainer.is_global_zero):
            return
        if self.register_as:
            names = list(pl_module.hparams["data"]["class_names"])
            check_registrable(MlflowClient(logger.tracking_uri), self.register_as, names)
        try:
            build = requirement_map_builder()
        except PrivateAPIError:  # only an optimisation: MLflow then builds it at fit end
            return
        self._requirement_map = threading.Thread(
            target=build, name="seglab-mlflow-package-map", daemon=True
        )
        self._requirement_map.start()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """At train end rather than fit end: Lightning's teardown, between the two, waits for
        last.ckpt to be written, which the model (made from best.ckpt) need not wait for."""
        logger = find_mlflow_logger(trainer)
        if not (self.enabled and trainer.is_global_zero and logger is not None):
            return
        best = _best_checkpoint(trainer)
        if best is None:
            return
        if self._requirement_map is not None:  # one build, not a second one racing it
            self._requirement_map.join()
        try:
            info = log_run_model(
                best[0], logger.run_id, logger.tracking_uri, experiment_id=logger.experiment_id
            )
            if self.register_as:
                names = list(pl_module.hparams["data"]["class_names"])
                client = MlflowClient(logger.tracking_uri)
                version, champion = register_run_model(
                    client, self.register_as, info.model_id, logger.run_id, names, best[1]
                )
                Console().print(
                    f"registered model [bold]{self.register_as}[/] version {version} "
                    f"(champion: version {champion})"
                )
        except Exception as error:  # noqa: BLE001 - a tracking outage must not end the run
            logger.store_errors.append(f"logging the model: {type(error).__name__}")
            warnings.warn(
                f"MLflow could not log the model of {best[0]} ({type(error).__name__}: {error}); "
                "the checkpoint itself is kept",
                stacklevel=2,
            )


def _best_checkpoint(trainer: pl.Trainer) -> tuple[Path, float | None] | None:
    """The best checkpoint's path and its val/mIoU (None when another metric chose it)."""
    callback = trainer.checkpoint_callback
    if not isinstance(callback, ModelCheckpoint) or not callback.best_model_path:
        return None
    path = Path(callback.best_model_path)
    wait_for_checkpoints(trainer, path)  # its write may still be queued
    if not path.is_file():
        return None
    score = callback.best_model_score
    known = score is not None and callback.monitor == SCORE_METRIC and callback.mode == "max"
    return path, float(score) if known else None
