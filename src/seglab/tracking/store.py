"""Where runs are recorded: $MLFLOW_TRACKING_URI, else the project's embedded sqlite store."""

from __future__ import annotations

import os
from pathlib import Path

STORE_DB = "mlflow.db"
ARTIFACTS_DIR = "artifacts"


def embedded_store_uri(store_dir: str | Path) -> str:
    """The sqlite URI of the embedded store in `store_dir` (e.g. `<project>/mlruns`)."""
    return f"sqlite:///{Path(store_dir).resolve() / STORE_DB}"


def resolve_tracking_uri(explicit: str | None, store_dir: str | Path) -> tuple[str, str | None]:
    """(tracking URI, artifact location for new experiments).

    Precedence: `logger.tracking_uri=` > `$MLFLOW_TRACKING_URI` > embedded store. Only the
    embedded store gets an artifact location from us; a server decides its own.
    """
    uri = explicit or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri, None
    store = Path(store_dir).resolve()
    store.mkdir(parents=True, exist_ok=True)
    return embedded_store_uri(store), (store / ARTIFACTS_DIR).as_uri()
