"""A tracking server that refuses the client (no or wrong credentials, no permission on the
experiment) stops the run before training, in one line naming the server and what to set."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from mlflow.exceptions import MlflowException

from seglab.errors import TrackingStoreError
from seglab.tracking.secrets import redact_text

USER_ENV, PASSWORD_ENV = "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"
REFUSALS = {
    401: f"refused the credentials (401): set {USER_ENV} and {PASSWORD_ENV} to a user of it",
    403: "denied permission (403): ask its admin to grant this user EDIT on the experiment",
}


@contextmanager
def refused_as_error(tracking_uri: str) -> Iterator[None]:
    """MLflow's 401/403 inside the block as a TrackingStoreError; other errors pass unchanged."""
    try:
        yield
    except MlflowException as error:
        reason = REFUSALS.get(error.get_http_status_code())
        if reason is None:
            raise
        raise TrackingStoreError(
            f"tracking server {redact_text(tracking_uri)!r} {reason}"
        ) from None
