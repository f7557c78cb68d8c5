"""`make ui`: the MLflow UI over the project's store, with each experiment's link printed.

The links open MLflow 3's model-training view (`?workflowType=machine_learning`); without it
the UI may open an experiment in its GenAI view, where seglab's runs are not listed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mlflow import MlflowClient

from seglab.tracking.store import embedded_store_uri
from seglab.tracking.views import experiment_url


def experiment_links(tracking_uri: str, base_url: str) -> list[str]:
    """`name: url` for every active experiment with runs in the store."""
    client = MlflowClient(tracking_uri)
    lines = []
    for experiment in client.search_experiments():
        if client.search_runs([experiment.experiment_id], max_results=1):
            lines.append(f"{experiment.name}: {experiment_url(base_url, experiment.experiment_id)}")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="make ui", description=__doc__.split("\n")[0])
    parser.add_argument("--store", type=Path, default=Path("mlruns"), help="embedded store folder")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    args.store.mkdir(parents=True, exist_ok=True)
    uri = embedded_store_uri(args.store)
    base = f"http://{args.host}:{args.port}"
    links = experiment_links(uri, base)
    print(f"MLflow UI on {base} (store {uri})")
    print("\n".join(links) if links else "no runs yet: train something, then reload the page")
    print("(each link opens the model-training view: ?workflowType=machine_learning)", flush=True)
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
               "--host", args.host, "--port", str(args.port)]  # fmt: skip
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
