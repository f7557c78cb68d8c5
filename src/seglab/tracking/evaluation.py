"""Scorings as MLflow runs: an eval.py result nested under (and tagged with) the training run,
a baseline's beside the trained runs of its dataset."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from seglab.tracking.params import to_mlflow_params
from seglab.tracking.run_file import read_run_file
from seglab.tracking.store import (
    check_tracking_store,
    get_or_create_experiment,
    resolve_tracking_uri,
)

TRAIN_RUN_TAG = "seglab.train_run_id"


def training_run(ckpt_path: str | Path) -> dict[str, str] | None:
    """The {run_id, tracking_uri} recorded next to a checkpoint (`<out>/checkpoints/x.ckpt`)."""
    path = Path(ckpt_path).resolve()
    for folder in (path.parent.parent, path.parent):
        info = read_run_file(folder)
        if info is not None:
            return {k: str(info[k]) for k in ("run_id", "tracking_uri") if info.get(k)}
    return None


def log_evaluation_run(
    ckpt_path: str | Path,
    metrics: Mapping[str, float],
    params: Mapping[str, Any],
    artifacts: Sequence[Path],
    tags: Mapping[str, str],
    run_name: str,
    tracking_uri: str | None,
    store_dir: str | Path,
    experiment_name: str,
) -> tuple[str, str]:
    """Record an evaluation; returns (run id, tracking URI).

    Store: `tracking_uri` if given, else the training run's (so the two are linked), else
    $MLFLOW_TRACKING_URI / the embedded store. With the training run found there, the evaluation
    goes into its experiment, nested under it (`mlflow.parentRunId`) and tagged with its id.
    """
    train = training_run(ckpt_path)
    artifact_location = None
    uri = tracking_uri or (train or {}).get("tracking_uri")
    if not uri:
        uri, artifact_location = resolve_tracking_uri(None, store_dir)
    client = MlflowClient(uri)
    all_tags = {**tags, "seglab.kind": "evaluation"}
    experiment_id = None
    if train:
        try:
            parent = client.get_run(train["run_id"])
            experiment_id = parent.info.experiment_id
            all_tags.update({TRAIN_RUN_TAG: train["run_id"], "mlflow.parentRunId": train["run_id"]})
            run_name = f"{run_name}_{parent.info.run_name}"
        except MlflowException:
            all_tags[TRAIN_RUN_TAG] = f"{train['run_id']} (not in {uri})"
    if experiment_id is None:
        experiment_id = get_or_create_experiment(client, experiment_name, artifact_location)
    return record_run(client, experiment_id, run_name, metrics, params, all_tags, artifacts), uri


def record_run(
    client: MlflowClient,
    experiment_id: str,
    run_name: str,
    metrics: Mapping[str, float],
    params: Mapping[str, Any],
    tags: Mapping[str, str],
    artifacts: Sequence[Path],
) -> str:
    """One finished run holding a single scoring (metrics at step 0); returns its id."""
    run = client.create_run(experiment_id, run_name=run_name)
    run_id = run.info.run_id
    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
        params=[Param(k, v) for k, v in to_mlflow_params(params).items()],
        tags=[RunTag(k, v) for k, v in tags.items()],
    )
    for path in artifacts:
        client.log_artifact(run_id, str(path), "evaluation")
    client.set_terminated(run_id)
    return run_id


def log_baseline_run(
    metrics: Mapping[str, float],
    params: Mapping[str, Any],
    artifacts: Sequence[Path],
    tags: Mapping[str, str],
    run_name: str,
    tracking_uri: str | None,
    store_dir: str | Path,
    experiment_name: str,
) -> tuple[str, str]:
    """A baseline's scores as a run of the dataset's experiment, where the trained runs of the
    same data are (the store as train.py chooses it); returns (run id, tracking URI)."""
    uri, artifact_location = resolve_tracking_uri(tracking_uri, store_dir)
    check_tracking_store(uri)
    client = MlflowClient(uri)
    experiment_id = get_or_create_experiment(client, experiment_name, artifact_location)
    all_tags = {**tags, "seglab.kind": "baseline"}
    return record_run(client, experiment_id, run_name, metrics, params, all_tags, artifacts), uri
