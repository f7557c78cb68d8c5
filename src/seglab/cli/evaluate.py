"""`python eval.py ckpt_path=...`: a checkpoint's metrics on a split of its (or another) dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra.utils
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from seglab.cli.eval_report import eval_tables, overall_metrics, per_class_rows, write_reports
from seglab.data.base import role_splits
from seglab.errors import ConfigError, report_user_errors
from seglab.run.context import hydra_overrides, output_dir
from seglab.serving.model_uri import checkpoint_from_model_uri
from seglab.tasks.checkpoint import (
    check_class_count,
    checkpoint_precision,
    load_task,
    read_checkpoint,
)
from seglab.tracking.evaluation import log_evaluation_run
from seglab.tracking.provenance import provenance_tags


def eval_data_config(cfg: DictConfig, trained: dict[str, Any]) -> dict[str, Any]:
    """The data config to score: `data=<name>` composes a whole one, else the checkpoint's own
    with the non-null `data.*` overrides; `split` picks the split the test loop reads."""
    if "_target_" in cfg.data:  # a data group was chosen on the command line
        data: dict[str, Any] = OmegaConf.to_container(cfg.data, resolve=True)  # type: ignore[assignment]
    else:
        data = dict(trained)
        data.update({k: v for k, v in cfg.data.items() if v is not None})
    splits = role_splits(data.get("splits"))
    # A role (train/val/test) maps through the dataset's own split names; anything else is one.
    data["splits"] = {**splits, "test": splits.get(cfg.split, cfg.split)}
    data["train_transforms"] = []
    return data


def chosen_model(cfg: DictConfig, data: dict[str, Any]) -> dict[str, Any] | None:
    """`model=<name>` given to eval.py, resolved against the scored data (None: the ckpt's)."""
    if cfg.get("model") is None:
        return None
    root = OmegaConf.create({"data": data, "model": OmegaConf.to_container(cfg.model)})
    return OmegaConf.to_container(root.model, resolve=True)  # type: ignore[return-value]


@report_user_errors
def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Run the test loop of the checkpoint's task on `split`; print, save, log and return it.
    `model_uri=` (an MLflow model seglab logged) stands for `ckpt_path=`."""
    if not cfg.get("ckpt_path") and not cfg.get("model_uri"):
        raise ConfigError(
            "ckpt_path= is missing: give a seglab checkpoint, or model_uri= (runs:/<run id>/model, "
            "models:/<name>@champion)"
        )
    with checkpoint_from_model_uri(cfg):
        return _evaluate(cfg)


def _evaluate(cfg: DictConfig) -> dict[str, float]:
    ckpt_path = Path(cfg.ckpt_path)
    ckpt = read_checkpoint(ckpt_path)
    hparams = ckpt["hyper_parameters"]
    data_cfg = eval_data_config(cfg, hparams["data"])
    check_class_count(hparams, data_cfg, ckpt_path)
    infer = OmegaConf.to_container(cfg.infer, resolve=True) if cfg.get("infer") else None
    model = chosen_model(cfg, data_cfg)
    task = load_task(ckpt_path, model=model, infer=infer, ckpt=ckpt)  # type: ignore[arg-type]
    datamodule = hydra.utils.instantiate(OmegaConf.create(data_cfg), targets=task.targets)
    trainer = pl.Trainer(
        accelerator=cfg.accelerator,
        devices=1,
        precision=cfg.precision or checkpoint_precision(ckpt, cfg.accelerator),
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=cfg.progress_bar,
    )
    (metrics,) = trainer.test(task, datamodule=datamodule, verbose=False)
    matrix = task.last_confusion("test")
    rows = per_class_rows(metrics, task.class_names, matrix.numpy() if matrix is not None else None)
    overall = overall_metrics(metrics)
    out_dir = output_dir(cfg)
    # A model_uri's weights were downloaded to a temporary folder: the URI says what was scored.
    source = (
        {"model_uri": cfg.model_uri}
        if cfg.get("model_uri")
        else {"ckpt_path": str(ckpt_path.resolve())}
    )
    info = {
        **source,
        "data": data_cfg["name"],
        "root": data_cfg.get("root"),
        "split": cfg.split,
        "infer": task.infer_settings.mode if task.infer_settings is not None else None,
    }
    files = write_reports(out_dir, overall, rows, info)

    console = Console()
    split = data_cfg["splits"]["test"]
    named = f" ({split})" if split != cfg.split else ""
    source = cfg.get("model_uri") or ckpt_path
    console.print(f"checkpoint: {source}  data: {data_cfg['name']}  split: {cfg.split}{named}")
    for table in eval_tables(overall, rows):
        console.print(table)
    console.print(f"written: {', '.join(str(f) for f in files)}")
    if cfg.log_mlflow:
        run_id, uri = log_evaluation_run(
            ckpt_path,
            {k: float(v) for k, v in metrics.items()},
            params={**info, "infer": infer or {}},
            artifacts=files,
            tags=provenance_tags(Path(cfg.paths.root_dir), hydra_overrides(), out_dir),
            run_name=f"eval-{cfg.split}",
            tracking_uri=cfg.tracking_uri,
            store_dir=cfg.paths.mlflow_dir,
            experiment_name=data_cfg["name"],
        )
        console.print(f"MLflow evaluation run: [bold]{run_id}[/] in {uri}")
    return metrics
