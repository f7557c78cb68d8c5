"""Where runs are recorded: $MLFLOW_TRACKING_URI, else the project's embedded sqlite store."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from seglab.errors import SeglabError, TrackingStoreError
from seglab.tracking.secrets import redact_text
from seglab.tracking.views import model_training_tags

if TYPE_CHECKING:
    from mlflow import MlflowClient

STORE_DB = "mlflow.db"
STORE_DIR = "mlruns"  # under the project root: conf/paths' `mlflow_dir`
ARTIFACTS_DIR = "artifacts"
# Seconds to wait for a tracking server before giving up. MLflow's own client retries for
# minutes, so without this check a wrong URI looks like a hang.
STORE_CHECK_TIMEOUT_S = 5.0


def embedded_store_uri(store_dir: str | Path) -> str:
    """The sqlite URI of the embedded store in `store_dir` (e.g. `<project>/mlruns`)."""
    return f"sqlite:///{Path(store_dir).resolve() / STORE_DB}"


def configured_tracking_uri(explicit: str | None = None) -> str | None:
    """The URI the user chose: `explicit` (`logger.tracking_uri=`, `--tracking-uri`), else
    $MLFLOW_TRACKING_URI; None means the project's embedded store."""
    return explicit or os.environ.get("MLFLOW_TRACKING_URI") or None


def resolve_tracking_uri(explicit: str | None, store_dir: str | Path) -> tuple[str, str | None]:
    """(tracking URI, artifact location for new experiments).

    Precedence: `logger.tracking_uri=` > `$MLFLOW_TRACKING_URI` > embedded store. Only the
    embedded store gets an artifact location from us; a server decides its own.
    """
    uri = configured_tracking_uri(explicit)
    if uri:
        return uri, None
    store = Path(store_dir).resolve()
    store.mkdir(parents=True, exist_ok=True)
    return embedded_store_uri(store), (store / ARTIFACTS_DIR).as_uri()


def existing_tracking_uri(explicit: str | None = None) -> str:
    """The URI to read runs from (compare): as `resolve_tracking_uri`, but an embedded store
    must already exist under $SEGLAB_ROOT (else the working dir); nothing is created."""
    uri = configured_tracking_uri(explicit)
    if uri:
        return uri
    store = Path(os.environ.get("SEGLAB_ROOT", ".")) / STORE_DIR
    if not (store / STORE_DB).is_file():
        raise SeglabError(
            f"no MLflow store at {store / STORE_DB}; train something first, run from the project "
            "root, or pass --tracking-uri / set MLFLOW_TRACKING_URI"
        )
    return embedded_store_uri(store)


def get_or_create_experiment(
    client: MlflowClient, name: str, artifact_location: str | None = None
) -> str:
    """The id of the active experiment `name`, created (with `artifact_location`) if missing."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None and experiment.lifecycle_stage != "deleted":
        return experiment.experiment_id
    return client.create_experiment(
        name, artifact_location=artifact_location, tags=model_training_tags()
    )


def _where(uri: str) -> str:
    """How the user set this URI, for error messages (credentials in it are masked)."""
    source = "MLFLOW_TRACKING_URI" if os.environ.get("MLFLOW_TRACKING_URI") == uri else "tracking"
    return f"{source} {redact_text(uri)!r}"


def check_tracking_store(uri: str, timeout: float = STORE_CHECK_TIMEOUT_S) -> None:
    """Fail fast, before any training, when the store cannot be used.

    http(s): the server's `/health` endpoint must answer within `timeout` seconds.
    sqlite/file: the folder must exist or be creatable, and be writable. Other schemes
    (databricks, plugins) are left to MLflow.
    """
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        url = f"{uri.rstrip('/')}/health"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - http(s) only
                response.read(64)
        except urllib.error.HTTPError as error:
            if error.code in (401, 403):  # a server that wants credentials is still reachable
                return
            raise TrackingStoreError(
                f"{_where(uri)}: the tracking server answered {error.code} on /health; "
                "check the URI (it should be the MLflow server's base URL)"
            ) from error
        except (OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise TrackingStoreError(
                f"{_where(uri)} is unreachable ({reason}, within {timeout:g} s): start the MLflow "
                "server, fix the URI, or unset MLFLOW_TRACKING_URI to use the embedded store"
            ) from error
    elif scheme in ("sqlite", "file", ""):
        if scheme == "sqlite":
            if not uri.startswith("sqlite:///"):  # in-memory or unusual forms: MLflow's business
                return
            folder = Path(uri[len("sqlite:///") :]).parent
        else:
            folder = Path(parts.path)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise TrackingStoreError(f"{_where(uri)}: cannot create {folder} ({error})") from error
        if not os.access(folder, os.W_OK):
            raise TrackingStoreError(f"{_where(uri)}: {folder} is not writable")
