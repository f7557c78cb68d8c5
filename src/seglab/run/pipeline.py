"""A training run, top to bottom: prepare → build → run → report.

`train(cfg)` returns `(metrics, objects)` as lightning-hydra-template's `train()` does; the CLI
(`seglab.cli.train`) adds what is a command's business: user-error messages, the exit status
on SIGTERM, the printed summary and the sweeper's objective.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from seglab.run.build import build
from seglab.run.prepare import Prepared, prepare
from seglab.run.resume import CONFIG_FILE, reopen_run
from seglab.run.sweep_job import optimized_value
from seglab.tracking.auth import refused_as_error
from seglab.tracking.lineage import log_splits
from seglab.tracking.logger import SeglabMLFlowLogger
from seglab.tracking.run_file import write_run_file
from seglab.tracking.secrets import masked_paths, redact_config
from seglab.tracking.views import mark_model_training

# metrics[OBJECTIVE]: `optimized_metric`'s best value (its last one when no checkpoint monitors
# it), NaN when never logged: what a sweeper optimises.
OBJECTIVE = "objective"


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


def open_run(prepared: Prepared, objects: dict[str, Any]) -> None:
    """Rank 0 reads the data first, so data problems surface before an MLflow run exists (other
    ranks check theirs in fit); then it starts the MLflow run, or reopens a resumed one."""
    trainer, logger, datamodule = objects["trainer"], objects["logger"], objects["datamodule"]
    if not trainer.is_global_zero:
        return
    datamodule.prepare_data()
    datamodule.setup("fit")
    resumed = prepared.resumed
    if logger is not None and resumed is not None and resumed.run_id is not None:
        reopen_run(logger, resumed)
    elif logger is not None:
        with refused_as_error(logger.tracking_uri):
            start_tracking(logger, prepared.container, prepared.out_dir)
        mark_model_training(logger.experiment, logger.experiment_id)
        data = prepared.container["data"]
        splits = {"train": datamodule.train_dataset, "val": datamodule.val_dataset}
        log_splits(logger, splits, data["name"], data["root"])


def run(prepared: Prepared, objects: dict[str, Any]) -> None:
    """Fit (from `ckpt_path`, when given), then test the best checkpoint (`test_after_fit`)."""
    cfg, trainer, task, datamodule = (objects[k] for k in ("cfg", "trainer", "task", "datamodule"))
    open_run(prepared, objects)
    # A SIGTERM stops fit with SIGTERMException after RunGuard saved a checkpoint.
    trainer.fit(task, datamodule=datamodule, ckpt_path=cfg.ckpt_path, weights_only=True)
    if cfg.test_after_fit and not cfg.trainer.get("fast_dev_run"):
        trainer.test(task, datamodule=datamodule, ckpt_path="best", weights_only=True)


def report(objects: dict[str, Any]) -> dict[str, float]:
    """The last epoch's metrics as floats, and the sweep's objective under OBJECTIVE."""
    cfg, trainer = objects["cfg"], objects["trainer"]
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    metrics[OBJECTIVE] = optimized_value(trainer, cfg.get("optimized_metric", "val/mIoU"))
    return metrics


def train(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Train (and optionally test) the composed config; returns `(metrics, objects)`:
    metrics as `report` gives them, objects: cfg, datamodule, task, trainer, logger."""
    prepared = prepare(cfg)
    objects = build(prepared)
    run(prepared, objects)
    return report(objects), objects
