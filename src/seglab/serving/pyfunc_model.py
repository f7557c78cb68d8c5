"""The MLflow pyfunc face of `ImagePredictor`. MLflow builds it from `model_code.py` (a model
from code: nothing pickled), and hands it the weights file as the artifact `weights`."""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc

from seglab.serving.predictor import DEFAULT_SCORE_THRESH, ImagePredictor

WEIGHTS_ARTIFACT = "weights"


class SeglabPyfuncModel(mlflow.pyfunc.PythonModel):
    """predict(images) → class-id masks, or instances for a Mask R-CNN model."""

    def load_context(self, context: Any) -> None:
        self.predictor = ImagePredictor(context.artifacts[WEIGHTS_ARTIFACT])

    def predict(self, context: Any, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        score_thresh = float((params or {}).get("score_thresh", DEFAULT_SCORE_THRESH))
        return self.predictor(model_input, score_thresh=score_thresh)
