"""Step 2 of a run: the objects that train: DataModule, task, Trainer (with its callbacks) and
the MLflow logger. Nothing is read, fitted or logged yet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra.utils
import pytorch_lightning as pl
from omegaconf import DictConfig
from pytorch_lightning.callbacks import LearningRateMonitor, ProgressBar

from seglab.checkpoint_io import BackgroundCheckpointIO
from seglab.distributed import check_no_relaunch
from seglab.errors import ConfigError
from seglab.run.context import hydra_choices, hydra_overrides
from seglab.run.prepare import Prepared
from seglab.tasks import task_class
from seglab.tasks.base import SegmentationTask
from seglab.tasks.checkpoint import read_checkpoint, weight_mismatch
from seglab.tracking.logger import SeglabMLFlowLogger
from seglab.tracking.naming import run_name
from seglab.tracking.provenance import provenance_tags
from seglab.tracking.secrets import redact_params
from seglab.tracking.store import check_tracking_store, resolve_tracking_uri
from seglab.tracking.sweep import child_logger_kwargs
from seglab.tracking.system_metrics import SystemMetrics

# The data config keys every task reads (the whole data config travels in each checkpoint, so
# eval/predict can rebuild the dataset and its normalisation from the checkpoint alone).
DATA_INFO_KEYS = (
    "name", "num_classes", "class_names", "palette", "ignore_index", "in_channels", "mean", "std"
)  # fmt: skip


def build_task(container: dict[str, Any]) -> SegmentationTask:
    """The task named by `model.task`, built from plain (checkpoint-safe) config dicts."""
    missing = [key for key in DATA_INFO_KEYS if key not in container["data"]]
    if missing:
        raise ConfigError(f"the data config lacks {', '.join('data.' + k for k in missing)}")
    cls = task_class(container["model"].get("task", "semantic"))
    return cls(
        model=container["model"],
        loss=container["loss"],
        optim=container["optim"],
        scheduler=container["scheduler"],
        data=container["data"],
        infer=container.get("infer"),
    )


def check_start_checkpoint(path: Path, task: pl.LightningModule) -> None:
    """`ckpt_path=` must open safely and fit the configured model: said before any run starts."""
    problems = weight_mismatch(task.state_dict(), read_checkpoint(path)["state_dict"])
    if problems:
        model = task.hparams["model"]
        raise ConfigError(
            f"ckpt_path={str(path)!r} does not fit the configured model "
            f"(model {model.get('arch') or model.get('name')!r}, "
            f"data.num_classes={task.hparams['data'].get('num_classes')}): " + "; ".join(problems)
        )


def build_logger(cfg: DictConfig, out_dir: Path, run_id: str | None = None) -> SeglabMLFlowLogger:
    """The MLflow logger; `run_id` continues an existing run. Fails fast on an unusable store."""
    uri, artifact_location = resolve_tracking_uri(cfg.logger.tracking_uri, cfg.paths.mlflow_dir)
    check_tracking_store(uri)
    kwargs = dict(
        experiment_name=cfg.logger.experiment_name,
        run_name=cfg.logger.run_name or run_name(cfg, hydra_choices()),
        tracking_uri=uri,
        artifact_location=artifact_location,
        tags=redact_params(provenance_tags(Path(cfg.paths.root_dir), hydra_overrides(), out_dir)),
        synchronous=cfg.logger.synchronous,
        run_id=run_id,
    )
    # In a multirun: a child of the sweep's parent run, named after the job's overrides.
    return SeglabMLFlowLogger(**child_logger_kwargs(kwargs))


def build_trainer(cfg: DictConfig, logger: SeglabMLFlowLogger | None) -> pl.Trainer:
    """The configured Trainer with the configured callbacks Lightning accepts in this run."""
    callbacks = [
        hydra.utils.instantiate(c) for c in cfg.callbacks.values() if c and c.get("_target_")
    ]
    if logger is None:  # Lightning refuses a learning-rate monitor without a logger
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    if logger is not None and cfg.logger.get("system_metrics", False):
        callbacks.append(SystemMetrics(cfg.logger.get("system_metrics_interval", 10)))
    if cfg.trainer.get("enable_progress_bar") is False:  # ... and a progress bar when told none
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    extra: dict[str, Any] = {}
    if cfg.trainer.get("plugins") is None:  # checkpoints written off the training thread
        extra["plugins"] = [BackgroundCheckpointIO()]
    trainer: pl.Trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=callbacks, logger=logger if logger is not None else False, **extra
    )
    check_no_relaunch(trainer)
    return trainer


def build(prepared: Prepared) -> dict[str, Any]:
    """cfg, datamodule, task, trainer and logger (None under fast_dev_run: nothing recorded)."""
    cfg, resumed = prepared.cfg, prepared.resumed
    # The model's task picks the targets: class masks, or instances too (model=mask_rcnn).
    targets = task_class(cfg.model.get("task", "semantic")).targets
    datamodule = hydra.utils.instantiate(cfg.data, targets=targets)
    task = build_task(prepared.redacted)
    if cfg.get("ckpt_path") and resumed is None:
        check_start_checkpoint(Path(cfg.ckpt_path), task)
    logger = None
    if not cfg.trainer.get("fast_dev_run"):
        logger = build_logger(cfg, prepared.out_dir, resumed.run_id if resumed else None)
    trainer = build_trainer(cfg, logger)
    return {
        "cfg": cfg,
        "datamodule": datamodule,
        "task": task,
        "trainer": trainer,
        "logger": logger,
    }
