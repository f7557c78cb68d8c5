"""MLflow 3's model-training view for seglab's experiments, and the links that open it.

MLflow 3's UI opens an experiment in its GenAI view (traces) unless the experiment's kind tag
says it is classic model development, or the URL asks for `workflowType=machine_learning`
(the UI then remembers the choice in the browser's localStorage). seglab sets both: the tag on
every experiment it logs into (unless someone chose another kind), and the query in the links
it prints. The tag key and value are the ones the installed MLflow UI reads
(`mlflow.experimentKind`, `custom_model_development`).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow import MlflowClient

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"
WORKFLOW_QUERY = "workflowType=machine_learning"


def model_training_tags() -> dict[str, str]:
    """Tags for a new experiment: opened in the model-training view."""
    return {EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND}


def mark_model_training(client: MlflowClient, experiment_id: str) -> None:
    """Tag experiment `experiment_id` as model training unless it already has a kind; a store that
    refuses (a user who may log runs but not edit the experiment) is warned about, not fatal."""
    try:
        experiment = client.get_experiment(experiment_id)
        if EXPERIMENT_KIND_TAG not in experiment.tags:
            client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND)
    except Exception as error:  # noqa: BLE001 - the view is a convenience, the run matters
        warnings.warn(
            f"could not tag experiment {experiment_id} as model training "
            f"({type(error).__name__}: {error}); open it with ?{WORKFLOW_QUERY}",
            stacklevel=2,
        )


def experiment_url(base_url: str, experiment_id: str) -> str:
    """The experiment's runs table in the model-training view, on the UI at `base_url`."""
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs?{WORKFLOW_QUERY}"


def run_url(base_url: str, experiment_id: str, run_id: str, tab: str = "") -> str:
    """A run's page (`tab`: model-metrics, artifacts, ...) in the model-training view."""
    path = f"/#/experiments/{experiment_id}/runs/{run_id}" + (f"/{tab}" if tab else "")
    return f"{base_url.rstrip('/')}{path}?{WORKFLOW_QUERY}"
