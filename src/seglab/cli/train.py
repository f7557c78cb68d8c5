"""`python train.py ...`: the training pipeline (seglab.run.pipeline) as a command: user errors
as messages, SIGTERM as an exit status, a printed summary, the sweeper's objective."""

from __future__ import annotations

import signal
import sys
from typing import Any

from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities.exceptions import SIGTERMException
from rich.console import Console

from seglab.cli.summary import print_run_summary
from seglab.errors import report_user_errors
from seglab.run import pipeline
from seglab.run.sweep_job import sweep_job
from seglab.tracking.naming import model_label


def print_summary(metrics: dict[str, float], objects: dict[str, Any]) -> None:
    """The run's metrics, best checkpoint and MLflow run, as the console shows them."""
    trainer, logger = objects["trainer"], objects["logger"]
    ckpt = trainer.checkpoint_callback
    best_score = ckpt.best_model_score if ckpt is not None else None
    print_run_summary(
        Console(),
        {k: v for k, v in metrics.items() if k != pipeline.OBJECTIVE},
        objects["task"].class_names,
        best_ckpt=ckpt.best_model_path if ckpt is not None else None,
        best_score=float(best_score) if best_score is not None else None,
        run_id=logger.run_id if logger is not None else None,
        tracking_uri=logger.tracking_uri if logger is not None else None,
        store_errors=logger.store_errors if logger is not None else (),
        model=model_label(OmegaConf.to_container(objects["cfg"].model, resolve=True)),
    )


@sweep_job
@report_user_errors
def train(cfg: DictConfig) -> float | None:
    """Fit (and optionally test); returns the best `optimized_metric` (val/mIoU) for sweepers."""
    try:
        metrics, objects = pipeline.train(cfg)
    except SIGTERMException:  # RunGuard saved a checkpoint; exit as a terminated process does
        sys.exit(128 + signal.SIGTERM)
    if objects["trainer"].is_global_zero:
        print_summary(metrics, objects)
    return metrics[pipeline.OBJECTIVE]
