"""seglab models in MLflow: each training run's best checkpoint logged as an MLflow pyfunc model
(the network with seglab's own pre- and post-processing), registered under a name with a
`champion` alias, and read back by predict.py / eval.py through `model_uri=`."""
