"""`python train.py ...`: compose → DataModule → Task → Trainer → MLflow."""

from __future__ import annotations

import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import hydra.utils
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import LearningRateMonitor, ProgressBar
from pytorch_lightning.utilities.exceptions import SIGTERMException
from rich.console import Console

from seglab.cli.common import hydra_choices, hydra_overrides, output_dir, report_user_errors
from seglab.cli.resume import CONFIG_FILE, Resumed, load_resume, reopen_run
from seglab.cli.summary import print_run_summary
from seglab.cli.sweep_job import optimized_value, sweep_job
from seglab.data.stats import resolve_auto_class_weights
from seglab.distributed import check_no_relaunch, multirun_safe_trainer
from seglab.errors import ConfigError
from seglab.tasks import task_class
from seglab.tasks.checkpoint import read_checkpoint, weight_mismatch
from seglab.tracking.logger import SeglabMLFlowLogger
from seglab.tracking.naming import model_label, run_name
from seglab.tracking.provenance import provenance_tags
from seglab.tracking.run_file import write_run_file
from seglab.tracking.secrets import mask_paths, masked_paths, redact_config, redact_params
from seglab.tracking.store import check_tracking_store, resolve_tracking_uri
from seglab.tracking.sweep import child_logger_kwargs

# The data config keys every task reads (the whole data config travels in each checkpoint, so
# eval/predict can rebuild the dataset and its normalisation from the checkpoint alone).
DATA_INFO_KEYS = (
    "name", "num_classes", "class_names", "palette", "ignore_index", "in_channels", "mean", "std"
)  # fmt: skip


def check_config(cfg: DictConfig) -> None:
    """Inconsistencies that would otherwise surface deep inside training."""
    if OmegaConf.is_missing(cfg.model, "arch"):
        raise ConfigError(
            "model.arch is not set: conf/model/_smp.yaml is the shared base of the smp model "
            "configs, not a model; choose one: model=unet, model=fpn, ... (train.py --help "
            "lists them)"
        )
    if OmegaConf.is_missing(cfg.data, "name"):
        raise ConfigError(
            "data.name is not set: conf/data/_base.yaml is the shared base of the dataset "
            "configs, not a dataset; choose one: data=voc, data=cityscapes, ... (train.py --help "
            "lists them)"
        )
    if cfg.model.get("num_classes") is not None and cfg.model.num_classes != cfg.data.num_classes:
        raise ConfigError(
            f"model.num_classes={cfg.model.num_classes} but data.num_classes={cfg.data.num_classes} "
            f"({cfg.data.name}); leave model.num_classes at its default ${{data.num_classes}}"
        )
    weights = cfg.loss.get("class_weights")
    if weights is not None and len(weights) != cfg.data.num_classes:
        raise ConfigError(
            f"loss.class_weights has {len(weights)} values; data.num_classes={cfg.data.num_classes}"
        )


def build_task(container: dict[str, Any]) -> pl.LightningModule:
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


def build_logger(cfg: DictConfig, out_dir: Path, run_id: str | None = None) -> SeglabMLFlowLogger:
    """The MLflow logger; `run_id` continues an existing run. Fails fast on an unusable store."""
    uri, artifact_location = resolve_tracking_uri(cfg.logger.tracking_uri, cfg.paths.mlflow_dir)
    check_tracking_store(uri)
    choices = hydra_choices()
    kwargs = dict(
        experiment_name=cfg.logger.experiment_name,
        run_name=cfg.logger.run_name or run_name(cfg, choices),
        tracking_uri=uri,
        artifact_location=artifact_location,
        tags=redact_params(provenance_tags(Path(cfg.paths.root_dir), hydra_overrides(), out_dir)),
        synchronous=cfg.logger.synchronous,
        run_id=run_id,
    )
    # In a multirun: a child of the sweep's parent run, named after the job's overrides.
    return SeglabMLFlowLogger(**child_logger_kwargs(kwargs))


def start_tracking(logger: SeglabMLFlowLogger, container: dict[str, Any], out_dir: Path) -> None:
    """Create the MLflow run, log the resolved config, remember the run id in the output dir."""
    config_path = out_dir / CONFIG_FILE  # complete: resume= reads it back
    config_path.write_text(OmegaConf.to_yaml(container))
    logger.log_hyperparams(container)
    redacted = redact_config(container)
    with tempfile.TemporaryDirectory() as tmp:  # the logged copy has credentials masked
        logged = Path(tmp) / CONFIG_FILE
        logged.write_text(OmegaConf.to_yaml(redacted))
        logger.log_artifact(str(logged), "config")
    masked = masked_paths(container, redacted)  # for resume= (see secrets.py)
    write_run_file(out_dir, logger.run_id, logger.tracking_uri, masked)


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


@sweep_job
@report_user_errors
def train(cfg: DictConfig) -> float | None:
    """Fit (and optionally test); returns the best `optimized_metric` (val/mIoU) for sweepers."""
    resumed: Resumed | None = load_resume(cfg.resume) if cfg.get("resume") else None
    if resumed is not None:
        cfg = resumed.cfg
    resolve_auto_class_weights(cfg)  # loss.class_weights=auto → median-frequency weights
    check_config(cfg)
    # Inside a multirun DDP ranks are spawned, not re-run from argv (which would rerun the sweep);
    # done before the config is logged, so the run's params say how it really started.
    cfg.trainer = multirun_safe_trainer(cfg.trainer)
    pl.seed_everything(cfg.seed, workers=True)
    container: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    out_dir = output_dir(cfg)

    # The model's task picks the targets: class masks, or instances too (model=mask_rcnn).
    datamodule = hydra.utils.instantiate(cfg.data, task=cfg.model.get("task", "semantic"))
    hidden = resumed.masked if resumed is not None else []
    task = build_task(mask_paths(redact_config(container), hidden))  # no credentials in ckpts
    if cfg.get("ckpt_path") and resumed is None:
        check_start_checkpoint(Path(cfg.ckpt_path), task)
    callbacks = [
        hydra.utils.instantiate(c) for c in cfg.callbacks.values() if c and c.get("_target_")
    ]
    fast_dev_run = bool(cfg.trainer.get("fast_dev_run"))
    run_id = resumed.run_id if resumed is not None else None
    logger = None if fast_dev_run else build_logger(cfg, out_dir, run_id)
    if logger is None:  # Lightning refuses a learning-rate monitor without a logger
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    if cfg.trainer.get("enable_progress_bar") is False:  # ... and a progress bar when told none
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    trainer: pl.Trainer = hydra.utils.instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=logger if logger is not None else False,
    )
    check_no_relaunch(trainer)
    if trainer.is_global_zero:
        # Data problems surface here, before an MLflow run exists (other ranks check in fit).
        datamodule.prepare_data()
        datamodule.setup("fit")
        if logger is not None and resumed is not None and resumed.run_id is not None:
            reopen_run(logger, resumed)
        elif logger is not None:
            start_tracking(logger, container, out_dir)

    try:
        trainer.fit(task, datamodule=datamodule, ckpt_path=cfg.ckpt_path, weights_only=True)
    except SIGTERMException:  # RunGuard saved a checkpoint; exit as a terminated process does
        sys.exit(128 + signal.SIGTERM)
    if cfg.test_after_fit and not fast_dev_run:
        trainer.test(task, datamodule=datamodule, ckpt_path="best", weights_only=True)

    ckpt = trainer.checkpoint_callback
    best_score = ckpt.best_model_score if ckpt is not None else None
    best = float(best_score) if best_score is not None else None
    if trainer.is_global_zero:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        print_run_summary(
            Console(),
            metrics,
            task.class_names,
            best_ckpt=ckpt.best_model_path if ckpt is not None else None,
            best_score=best,
            run_id=logger.run_id if logger is not None else None,
            tracking_uri=logger.tracking_uri if logger is not None else None,
            store_errors=logger.store_errors if logger is not None else (),
            model=model_label(container["model"]),
        )
    return optimized_value(trainer, cfg.get("optimized_metric", "val/mIoU"))
