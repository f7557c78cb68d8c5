"""MLflow "model from code" file: copied into each logged model and run when it is loaded, so
loading imports seglab's class instead of unpickling an object."""

import mlflow.models

from seglab.serving.pyfunc_model import SeglabPyfuncModel

mlflow.models.set_model(SeglabPyfuncModel())
