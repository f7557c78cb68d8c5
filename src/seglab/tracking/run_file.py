"""`<output dir>/mlflow_run.json`: which MLflow run a training output dir belongs to.

train.py writes it when the run starts; resume=, eval.py and sweep jobs read it back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RUN_FILE = "mlflow_run.json"


def write_run_file(out_dir: Path, run_id: str, tracking_uri: str, masked: list[str]) -> None:
    """`masked`: config paths logged as `***` (secrets.py), for resume= to leave masked."""
    info = {"run_id": run_id, "tracking_uri": tracking_uri, "masked": masked}
    (out_dir / RUN_FILE).write_text(json.dumps(info, indent=2))


def read_run_file(out_dir: Path) -> dict[str, Any] | None:
    """The recorded run (`run_id`, `tracking_uri`, `masked`), or None where there is none."""
    try:
        info = json.loads((out_dir / RUN_FILE).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and info.get("run_id") else None
