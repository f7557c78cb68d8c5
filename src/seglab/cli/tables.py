"""The console tables of train.py's summary and eval.py's report: one way to print metrics."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich.table import Table

PER_CLASS = ("IoU", "F1", "Acc")


def fmt_metric(value: float | None) -> str:
    """4 decimals; a missing or NaN metric (class absent from labels and predictions) as —."""
    return "—" if value is None or not math.isfinite(value) else f"{value:.4f}"


def _share(value: float) -> str:
    return "—" if not math.isfinite(value) else f"{100 * value:.2f} %"


def overall_table(title: str, metrics: Iterable[tuple[str, float | None]]) -> Table:
    """Two columns, metric and value."""
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics:
        table.add_row(key, fmt_metric(value))
    return table


def per_class_table(
    title: str, rows: Sequence[Mapping[str, Any]], pixel_share: bool = False
) -> Table:
    """One row per class: IoU, F1, Acc (rows as eval_report.per_class_rows makes them) and, for
    eval.py, the class's share of the labelled pixels."""
    table = Table(title=title, title_justify="left")
    columns = ("class", *PER_CLASS, *(("pixel share",) if pixel_share else ()))
    for col in columns:
        table.add_column(col, justify="left" if col == "class" else "right")
    for row in rows:
        cells = [fmt_metric(row.get(key)) for key in PER_CLASS]
        if pixel_share:
            cells.append(_share(row["pixel_share"]))
        table.add_row(row["class"], *cells)
    return table
