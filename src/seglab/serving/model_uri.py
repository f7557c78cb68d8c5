"""`model_uri=` for predict.py and eval.py: a logged or registered seglab model as a checkpoint.

`runs:/<run id>/model`, `models:/<name>@champion`, `models:/<name>/<version>` (anything MLflow
resolves) is downloaded into a folder laid out like a training run's output: the weights file
under `checkpoints/` and the model's training run in `mlflow_run.json`, so eval.py nests its
evaluation under that run exactly as for a `ckpt_path=` from train.py.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from omegaconf import DictConfig

from seglab.compat import use_tracking_uri
from seglab.errors import ConfigError, SeglabError, TrackingStoreError
from seglab.serving.log_model import WEIGHTS_FILE
from seglab.serving.pyfunc_model import WEIGHTS_ARTIFACT
from seglab.tracking.run_file import write_run_file
from seglab.tracking.store import (
    check_tracking_store,
    configured_tracking_uri,
    resolve_tracking_uri,
)


def model_checkpoint(model_uri: str, dest: Path, tracking_uri: str | None, store_dir: str) -> Path:
    """The weights file of `model_uri`, downloaded under `dest`; a model that cannot be found,
    or a store that cannot be reached, is one line naming the URI."""
    uri, _ = resolve_tracking_uri(configured_tracking_uri(tracking_uri), store_dir)
    try:
        check_tracking_store(uri)
    except TrackingStoreError as error:
        raise SeglabError(f"model_uri={model_uri!r}: {error}") from error
    try:
        with use_tracking_uri(uri):  # runs:/ and models:/ resolve in the fluent API's store
            info = mlflow.models.get_model_info(model_uri)
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=model_uri, dst_path=str(dest / "model")
            )
    except (MlflowException, OSError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise SeglabError(f"model_uri={model_uri!r} not found in {uri}: {first}") from error
    weights = Path(local) / "artifacts" / WEIGHTS_FILE
    if not weights.is_file():
        raise SeglabError(
            f"model_uri={model_uri!r} is not a seglab model (no {WEIGHTS_ARTIFACT} file "
            f"artifacts/{WEIGHTS_FILE} in it)"
        )
    checkpoints = dest / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    ckpt = checkpoints / WEIGHTS_FILE
    weights.replace(ckpt)
    if info.run_id:
        write_run_file(dest, info.run_id, uri, masked=[])
    return ckpt


@contextmanager
def checkpoint_from_model_uri(cfg: DictConfig) -> Iterator[None]:
    """With `model_uri=` set (predict.py, eval.py), `cfg.ckpt_path` is its weights file, in a
    temporary folder removed afterwards; without it nothing changes."""
    model_uri = cfg.get("model_uri")
    if not model_uri:
        yield
        return
    if cfg.get("ckpt_path"):
        raise ConfigError(
            f"ckpt_path={cfg.ckpt_path!r} and model_uri={model_uri!r} both given; give one"
        )
    with tempfile.TemporaryDirectory(prefix="seglab-model-") as tmp:
        store_dir = cfg.paths.mlflow_dir
        cfg.ckpt_path = str(
            model_checkpoint(model_uri, Path(tmp), cfg.get("tracking_uri"), store_dir)
        )
        try:
            yield
        finally:
            cfg.ckpt_path = None
