"""A semantic task straight from a model config with pretrained weights, no seglab checkpoint:
the classic "segment my photos with torchvision's VOC model" workflow of predict.py."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from seglab.errors import ConfigError
from seglab.tasks.semantic import SemanticSegmentationTask


def pretrained_task(
    model: Mapping[str, Any], data: Mapping[str, Any], infer: Mapping[str, Any] | None = None
) -> SemanticSegmentationTask:
    """The model config's network with its `model.weights`, predicting `data`'s classes (their
    names and palette for the outputs). Weights with another class count get new, untrained
    heads, which would predict noise: refused."""
    if model.get("task", "semantic") != "semantic" or not model.get("weights"):
        raise ConfigError(
            "predict.py without ckpt_path needs a semantic model with pretrained weights: "
            "model=fcn|deeplabv3_tv|lraspp model.weights=<torchvision name or file>"
            f" (got model {model.get('name')!r}, model.weights={model.get('weights')!r})"
        )
    loss = {"_target_": "seglab.losses.CrossEntropyLoss", "ignore_index": data["ignore_index"]}
    task = SemanticSegmentationTask(
        model=dict(model), loss=loss, optim={}, scheduler={}, data=dict(data), infer=infer
    )
    return task.eval()
