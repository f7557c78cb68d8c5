"""`logger.register_model=<name>`: each run's model becomes a version of `<name>`, and the alias
`champion` follows the version with the best val/mIoU, so `models:/<name>@champion` serves it.

A name belongs to one set of classes: registering a model of other classes under it is refused
before anything is created (the class names are a tag of the registered model).
"""

from __future__ import annotations

import json
import math
from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from seglab.errors import ConfigError

CHAMPION = "champion"
CLASSES_TAG = "seglab.class_names"
SCORE_TAG = "seglab.val_mIoU"  # the version's best val/mIoU, what `champion` is chosen by


def _registered(client: MlflowClient, name: str) -> Any | None:
    try:
        return client.get_registered_model(name)
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise


def check_registrable(client: MlflowClient, name: str, class_names: list[str]) -> None:
    """Refuse `name` when it holds a model of other classes (or one seglab did not register)."""
    model = _registered(client, name)
    if model is None:
        return
    held = model.tags.get(CLASSES_TAG)
    if held is None or json.loads(held) != list(class_names):
        shown = ", ".join(json.loads(held)) if held else "not recorded (not a seglab model)"
        raise ConfigError(
            f"logger.register_model={name!r} holds a model of other classes ({shown}); this run "
            f"predicts {', '.join(class_names)}: choose another name"
        )


def register_run_model(
    client: MlflowClient, name: str, model_id: str, run_id: str, class_names: list[str],
    score: float | None,
) -> tuple[str, str]:  # fmt: skip
    """Register logged model `model_id` as a new version of `name`; returns (its version, the
    champion's)."""
    check_registrable(client, name, class_names)
    if _registered(client, name) is None:
        client.create_registered_model(name, tags={CLASSES_TAG: json.dumps(list(class_names))})
    tags = {} if score is None or math.isnan(score) else {SCORE_TAG: repr(float(score))}
    version = client.create_model_version(
        name, f"models:/{model_id}", run_id=run_id, tags=tags, model_id=model_id
    )
    return str(version.version), move_champion(client, name)


def move_champion(client: MlflowClient, name: str) -> str:
    """Point `champion` at the version with the best recorded val/mIoU (the newest on ties)."""
    versions = client.search_model_versions(f"name = '{name}'")
    scored = [(float(v.tags[SCORE_TAG]), int(v.version)) for v in versions if SCORE_TAG in v.tags]
    if not scored:
        return ""
    best = str(max(scored)[1])
    client.set_registered_model_alias(name, CHAMPION, best)
    return best
