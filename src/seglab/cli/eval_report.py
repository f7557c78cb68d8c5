"""eval.py's report: per-class table with pixel shares, overall metrics, metrics.json/CSV."""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from seglab.cli.tables import PER_CLASS, overall_table, per_class_table

_PER_CLASS_KEY = re.compile(rf"^[^/]+/({'|'.join(PER_CLASS)})/")


def per_class_rows(
    metrics: Mapping[str, float],
    class_names: Sequence[str],
    matrix: np.ndarray | None,
    stage: str = "test",
) -> list[dict[str, Any]]:
    """One row per class: IoU, F1, Acc and the class's share of the labelled pixels."""
    labels = matrix.sum(axis=1) if matrix is not None else None
    preds = matrix.sum(axis=0) if matrix is not None else None
    total = float(labels.sum()) if labels is not None else 0.0
    rows = []
    for i, name in enumerate(class_names):
        row: dict[str, Any] = {"class": name}
        for key in PER_CLASS:
            value = metrics.get(f"{stage}/{key}/{name}")
            row[key] = float(value) if value is not None else math.nan
        row["pixel_share"] = float(labels[i]) / total if labels is not None and total else math.nan
        row["label_pixels"] = int(labels[i]) if labels is not None else -1
        row["predicted_pixels"] = int(preds[i]) if preds is not None else -1
        rows.append(row)
    return rows


def overall_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    """Everything but the per-class entries (dataset extras such as Dice per case included)."""
    return {k: float(v) for k, v in sorted(metrics.items()) if not _PER_CLASS_KEY.match(k)}


def eval_tables(overall: Mapping[str, float], rows: Sequence[Mapping[str, Any]]) -> list[Table]:
    """Rich tables: overall metrics, then per class with each class's pixel share."""
    return [
        overall_table("overall", overall.items()),
        per_class_table("per class", rows, pixel_share=True),
    ]


def write_reports(
    out_dir: Path,
    overall: Mapping[str, float],
    rows: Sequence[Mapping[str, Any]],
    info: Mapping[str, Any],
) -> list[Path]:
    """metrics.json (info + overall + per class) and per_class.csv in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "metrics.json"
    payload = {**info, "metrics": dict(overall), "per_class": list(rows)}
    # NaN (a class absent from labels and predictions) is not JSON: write null.
    text = json.dumps(_nan_to_none(payload), indent=2)
    json_path.write_text(text)
    csv_path = out_dir / "per_class.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["class"])
        writer.writeheader()
        writer.writerows(rows)
    return [json_path, csv_path]


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value
