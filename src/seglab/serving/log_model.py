"""Logging a run's best checkpoint as an MLflow model (`runs:/<run id>/model`).

Format: a pyfunc model from code (`model_code.py`) around a weights-only file, not MLflow's
pickled `python_model` nor torch.export's pt2: loading runs `torch.load(weights_only=True)` and
seglab's own classes, and the pre/post-processing (val transforms, stride padding, sliding
window, map back to the image) is predict.py's code rather than a traced copy of it, which
pt2 cannot hold (albumentations and the placement search are numpy, not torch).
"""

from __future__ import annotations

import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import torch
from mlflow import MlflowClient
from mlflow.entities import LoggedModelOutput, LoggedModelStatus
from mlflow.models import Model, ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.types import ParamSchema, ParamSpec, Schema, TensorSpec

from seglab.compat import use_tracking_uri
from seglab.serving import model_code
from seglab.serving.predictor import DEFAULT_SCORE_THRESH
from seglab.serving.pyfunc_model import WEIGHTS_ARTIFACT
from seglab.tasks.base import PRECISION_KEY
from seglab.tasks.checkpoint import read_checkpoint

MODEL_NAME = "model"  # runs:/<run id>/model
WEIGHTS_FILE = "weights.pt"
EXAMPLE_SIZE = 32  # side of the input example: one stride, so logging stays cheap
# What the model needs installed beside seglab itself (served with --env-manager local).
REQUIREMENTS = (
    "mlflow", "torch", "torchvision", "pytorch-lightning", "segmentation-models-pytorch",
    "albumentations", "opencv-python-headless", "numpy",
)  # fmt: skip


def write_weights(ckpt_path: str | Path, dest: Path) -> dict[str, Any]:
    """The checkpoint without optimizer and loop state: weights, the resolved task config
    (`hyper_parameters`) and its precision, readable by `read_checkpoint`. Returns the config."""
    ckpt = read_checkpoint(ckpt_path, mmap=True)  # the optimizer state is never read
    slim = {
        key: ckpt[key] for key in ("state_dict", "hyper_parameters", PRECISION_KEY) if key in ckpt
    }
    torch.save(slim, dest)
    return dict(ckpt["hyper_parameters"])


def signature(hparams: dict[str, Any]) -> ModelSignature:
    """Images in (one H×W×C or a batch B×H×W×C of uint8: MLflow's tensor specs fix the rank,
    so the input is declared as an object tensor and checked by the model itself), masks or
    instances out; Mask R-CNN takes `score_thresh` as a parameter."""
    inputs = Schema([TensorSpec(np.dtype(object), (-1,))])
    if hparams["model"].get("task") == "instance":
        params = ParamSchema([ParamSpec("score_thresh", "double", DEFAULT_SCORE_THRESH)])
        return ModelSignature(inputs=inputs, outputs=None, params=params)
    outputs = Schema([TensorSpec(np.dtype(np.uint8), (-1, -1, -1))])
    return ModelSignature(inputs=inputs, outputs=outputs)


def requirements() -> list[str]:
    """The installed versions of what the model imports (no pip inference: it costs seconds)."""
    found = []
    for name in REQUIREMENTS:
        try:
            found.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return found


def log_run_model(
    ckpt_path: str | Path,
    run_id: str,
    tracking_uri: str,
    tags: dict[str, str] | None = None,
    experiment_id: str | None = None,
) -> ModelInfo:
    """Log `ckpt_path` as run `run_id`'s MLflow model named `model`; returns its ModelInfo.
    `experiment_id` (the run's, when the caller knows it) saves reading the run back.

    MLflow's `log_model` steps one by one (create the logged model in the run's experiment,
    save, upload, link it to the run, mark it ready), without the two it adds that cost seconds
    on every training run: loading the model back to predict on the input example (the tests
    serve the logged model for real instead) and copying every metric history into the model.
    """
    client = MlflowClient(tracking_uri)
    if experiment_id is None:  # a run with hundreds of params and tags: ≈ 0.5 s to read back
        experiment_id = client.get_run(run_id).info.experiment_id
    model = client.create_logged_model(
        experiment_id, name=MODEL_NAME, source_run_id=run_id, tags=tags, model_type="seglab"
    )
    with tempfile.TemporaryDirectory(prefix="seglab-model-") as tmp:
        weights = Path(tmp) / WEIGHTS_FILE
        hparams = write_weights(ckpt_path, weights)
        channels = int(hparams["data"].get("in_channels", 3))
        mlflow_model = Model(
            artifact_path=model.artifact_location,
            model_uuid=model.model_id,
            run_id=run_id,
            model_id=model.model_id,
            metadata={
                "seglab.class_names": list(hparams["data"]["class_names"]),
                "seglab.task": hparams["model"].get("task", "semantic"),
            },
        )
        local = Path(tmp) / MODEL_NAME
        mlflow.pyfunc.save_model(
            path=str(local),
            python_model=model_code.__file__,
            artifacts={WEIGHTS_ARTIFACT: str(weights)},
            signature=signature(hparams),
            input_example=np.zeros((EXAMPLE_SIZE, EXAMPLE_SIZE, channels), dtype=np.uint8),
            pip_requirements=requirements(),
            mlflow_model=mlflow_model,
        )
        client.log_model_artifacts(model.model_id, str(local))
    client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=0)])
    client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    with use_tracking_uri(tracking_uri):  # ModelInfo reads the logged model back
        return mlflow_model.get_model_info()
