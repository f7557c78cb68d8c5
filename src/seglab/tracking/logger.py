"""Lightning's MLFlowLogger with seglab's param handling."""

from __future__ import annotations

from argparse import Namespace
from collections.abc import Mapping
from typing import Any

from mlflow.entities import Param
from pytorch_lightning.loggers import MLFlowLogger
from pytorch_lightning.utilities import rank_zero_only

from seglab.tracking.params import to_mlflow_params

MAX_PARAMS_PER_BATCH = 100  # MLflow's log_batch limit


class SeglabMLFlowLogger(MLFlowLogger):
    """Logs the flattened resolved config; values over MLflow's limit are cut, not fatal.

    Lightning's own logger cuts every value to 250 characters and keeps Hydra's `_target_` keys.
    """

    @property
    def tracking_uri(self) -> str:
        """Where this run is recorded."""
        return self._tracking_uri

    @rank_zero_only
    def log_hyperparams(self, params: Mapping[str, Any] | Namespace) -> None:
        if isinstance(params, Namespace):
            params = vars(params)
        items = [Param(k, v) for k, v in to_mlflow_params(params).items()]
        for start in range(0, len(items), MAX_PARAMS_PER_BATCH):
            self.experiment.log_batch(
                run_id=self.run_id,
                params=items[start : start + MAX_PARAMS_PER_BATCH],
                **self._log_batch_kwargs,
            )

    @rank_zero_only
    def log_artifact(self, local_path: str, artifact_path: str | None = None) -> None:
        """Upload a file into this run's artifacts."""
        self.experiment.log_artifact(self.run_id, local_path, artifact_path)
