"""The end-of-run console report: overall and per-class metrics, checkpoint, MLflow run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.console import Console
from rich.table import Table

from seglab.cli.tables import PER_CLASS, fmt_metric, overall_table, per_class_table

OVERALL = ("mIoU", "mF1", "mAcc", "aAcc", "FWIoU", "mAP", "mAP50", "mAP75", "loss")


def metrics_tables(
    metrics: Mapping[str, float], stage: str, class_names: Sequence[str]
) -> list[Table]:
    """An overall table and, when the classes are few enough to read, a per-class one."""
    keys = [f"{stage}/{key}" for key in OVERALL if f"{stage}/{key}" in metrics]
    tables = [overall_table(f"{stage} metrics", ((key, metrics[key]) for key in keys))]
    if len(class_names) <= 60:
        rows = [
            {"class": name, **{m: metrics.get(f"{stage}/{m}/{name}") for m in PER_CLASS}}
            for name in class_names
        ]
        tables.append(per_class_table(f"{stage} per class", rows))
    return tables


def print_run_summary(
    console: Console,
    metrics: Mapping[str, float],
    class_names: Sequence[str],
    best_ckpt: str | None,
    best_score: float | None,
    run_id: str | None,
    tracking_uri: str | None,
    stage: str = "val",
    store_errors: Sequence[str] = (),
    model: str | None = None,
) -> None:
    for table in metrics_tables(metrics, stage, class_names):
        console.print(table)
    if model:  # the network built (tracking.naming.model_label), as the run name says
        console.print(f"model: [bold]{model}[/]")
    if best_ckpt:
        console.print(f"best checkpoint: [bold]{best_ckpt}[/] (val/mIoU {fmt_metric(best_score)})")
    if run_id:
        console.print(f"MLflow run: [bold]{run_id}[/] in {tracking_uri}")
        if store_errors:
            console.print(
                f"[yellow]warning:[/] the MLflow store failed {len(store_errors)} time(s) during "
                f"the run (first: {store_errors[0]}), so the run misses what was sent then; "
                "the checkpoints and the output dir are complete"
            )
        elif tracking_uri and tracking_uri.startswith("sqlite:"):
            console.print("open it with: [bold]make ui[/] → http://127.0.0.1:5000")
        elif tracking_uri:
            console.print(f"open it with: mlflow ui --backend-store-uri {tracking_uri}")
