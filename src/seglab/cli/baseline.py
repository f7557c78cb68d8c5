"""`python baseline.py method=... data=...`: a non-learned method scored like a model.

Fitted on the training split's raw samples, it predicts each image of `split` at its own size;
the predictions fill the same confusion matrix the models' validation fills, so its
`val/mIoU`, `val/IoU/<class>`, ... are comparable with theirs, in the same reports and MLflow
experiment. The dataset's own extra metrics (Dice per case, IoU per city) are not computed.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hydra.utils
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.progress import track

from seglab.baselines import build_baseline
from seglab.cli.eval_report import eval_tables, overall_metrics, per_class_rows, write_reports
from seglab.errors import report_user_errors
from seglab.metrics import ConfusionMatrix, segmentation_scores
from seglab.run.context import hydra_overrides, output_dir
from seglab.tracking.evaluation import log_baseline_run
from seglab.tracking.provenance import provenance_tags


def _pairs(reader: Any, label: str, progress: bool) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The raw, validated (image, mask) pairs of a reader (no augmentation, no resizing)."""
    for index in track(range(len(reader)), description=label, disable=not progress):
        yield reader.load(index)


def stage_of(split: str) -> str:
    """The metric prefix: `val` for the val role (what trained runs log), else the split."""
    return "val" if split == "val" else split


@report_user_errors
def baseline(cfg: DictConfig) -> dict[str, float]:
    """Fit, score, report; returns the logged metrics (`val/mIoU`, ...)."""
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.prepare_data()
    num_classes, ignore = datamodule.num_classes, datamodule.ignore_index
    settings = cfg.get(cfg.method)
    settings = OmegaConf.to_container(settings, resolve=True) if settings is not None else {}
    if cfg.method == "kmeans":
        settings["seed"] = int(cfg.seed)
    method = build_baseline(cfg.method, num_classes, ignore, settings)  # type: ignore[arg-type]
    split = datamodule.splits.get(cfg.split, cfg.split)
    train = datamodule.dataset_factory(split=datamodule.splits["train"], transform=None)
    scored = datamodule.dataset_factory(split=split, transform=None)
    method.fit(_pairs(train, f"fitting {cfg.method}", cfg.progress_bar))

    matrix = ConfusionMatrix(num_classes, ignore)
    for image, mask in _pairs(scored, f"scoring {split}", cfg.progress_bar):
        prediction = torch.from_numpy(method.predict(image).astype(np.int64))
        matrix.update(prediction[None], torch.from_numpy(mask.astype(np.int64))[None])
    counts = matrix.compute()
    stage = stage_of(cfg.split)
    metrics = {
        f"{stage}/{k}": v for k, v in segmentation_scores(counts, datamodule.class_names).items()
    }
    rows = per_class_rows(metrics, datamodule.class_names, counts.numpy(), stage=stage)
    overall = overall_metrics(metrics)
    info = {
        "method": cfg.method,
        "settings": settings,
        "fitted": method.describe(),
        "data": datamodule.name,
        "root": str(cfg.data.get("root")),
        "split": cfg.split,
        "images": len(scored),
    }
    out_dir = output_dir(cfg)
    files = write_reports(out_dir, overall, rows, info)

    console = Console()
    console.print(f"baseline: {cfg.method}  data: {datamodule.name}  split: {cfg.split} ({split})")
    for table in eval_tables(overall, rows):
        console.print(table)
    console.print(f"written: {', '.join(str(f) for f in files)}")
    if cfg.log_mlflow:
        finite = {k: v for k, v in metrics.items() if np.isfinite(v)}
        run_id, uri = log_baseline_run(
            finite,
            params=info,
            artifacts=files,
            tags=provenance_tags(Path(cfg.paths.root_dir), hydra_overrides(), out_dir),
            run_name=f"{cfg.method}_{datamodule.name}_baseline-{secrets.token_hex(3)}",
            tracking_uri=cfg.tracking_uri,
            store_dir=cfg.paths.mlflow_dir,
            experiment_name=datamodule.name,
        )
        console.print(f"MLflow baseline run: [bold]{run_id}[/] in {uri}")
    return metrics
