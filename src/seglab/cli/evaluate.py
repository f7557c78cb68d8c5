"""`python eval.py ckpt_path=...`: a checkpoint's metrics on a split of its dataset."""

from __future__ import annotations

from typing import Any

import hydra.utils
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from seglab.cli.common import report_user_errors
from seglab.cli.summary import metrics_tables
from seglab.tasks.checkpoint import load_task


@report_user_errors
def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Run the test loop of the checkpoint's task on `split`; print and return `test/...`."""
    task = load_task(cfg.ckpt_path)
    data_cfg: dict[str, Any] = dict(task.hparams["data"])
    data_cfg.update({k: v for k, v in cfg.data.items() if v is not None})
    data_cfg["splits"] = {**data_cfg.get("splits", {}), "test": cfg.split}
    data_cfg["train_transforms"] = []
    datamodule = hydra.utils.instantiate(OmegaConf.create(data_cfg))
    trainer = pl.Trainer(
        accelerator=cfg.accelerator,
        devices=1,
        precision=cfg.precision,
        logger=False,
        enable_checkpointing=False,
    )
    (metrics,) = trainer.test(task, datamodule=datamodule, verbose=False)
    console = Console()
    console.print(f"checkpoint: {cfg.ckpt_path}  split: {cfg.split}  data: {data_cfg['name']}")
    for table in metrics_tables(metrics, "test", task.class_names):
        console.print(table)
    return metrics
