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

    # model_input is left unannotated: MLflow reads a type hint there as the input's schema
    # (and warns on `Any`); the signature logged with the model says what it takes.
    def predict(self, context, model_input, params: dict[str, Any] | None = None) -> Any:  # noqa: ANN001
        score_thresh = float((params or {}).get("score_thresh", DEFAULT_SCORE_THRESH))
        return self.predictor(model_input, score_thresh=score_thresh)
