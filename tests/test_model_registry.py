"""`logger.register_model=<name>`: each run's model a new version, `champion` on the best
val/mIoU; a name holding other classes is refused; a bad `model_uri=` is one line naming it."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from mlflow import MlflowClient

from seglab.cli.predict import predict
from seglab.cli.train import train
from seglab.errors import ConfigError
from seglab.serving.registry import CHAMPION, CLASSES_TAG, register_run_model
from tests.conftest import compose_entry, compose_train, new_store, tiny_run

NAME = "shapes"


def _train(root: Path, out: Path, uri: str, *extra: str) -> str:
    """A tiny stub-network run registering its model under NAME; returns its run id."""
    run = tiny_run(root, train_batches=2, val_batches=1, log_model=True)
    args = [*run, f"logger.tracking_uri={uri}", f"logger.register_model={NAME}", *extra]
    train(compose_train(args, output_dir=out))
    return json.loads((out / "mlflow_run.json").read_text())["run_id"]


@pytest.fixture(scope="module")
def registry(tiny_synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two runs under one name: the first barely trained (lr 1e-9), the second trained; the
    champion after each."""
    tmp = tmp_path_factory.mktemp("registry")
    uri = new_store(tmp)
    client = MlflowClient(uri)
    weak = _train(tiny_synthetic_root, tmp / "weak", uri, "optim.lr=1e-9")
    after_weak = str(client.get_model_version_by_alias(NAME, CHAMPION).version)
    strong = _train(tiny_synthetic_root, tmp / "strong", uri, "trainer.max_epochs=3")
    after_strong = str(client.get_model_version_by_alias(NAME, CHAMPION).version)
    return {"uri": uri, "client": client, "runs": [weak, strong],
            "champions": [after_weak, after_strong]}  # fmt: skip


def _best_miou(client: MlflowClient, run_id: str) -> float:
    return max(m.value for m in client.get_metric_history(run_id, "val/mIoU"))


def test_each_run_is_a_version_and_champion_follows_the_best(registry: dict) -> None:
    client = registry["client"]
    versions = sorted(
        client.search_model_versions(f"name = '{NAME}'"), key=lambda v: int(v.version)
    )
    assert [v.run_id for v in versions] == registry["runs"]
    scores = [_best_miou(client, run_id) for run_id in registry["runs"]]
    assert scores[0] != scores[1], scores  # else the champion could not be told apart
    best = str(versions[scores.index(max(scores))].version)
    assert registry["champions"] == ["1", best]
    # A worse version registered later leaves the champion where it is.
    weak_model = client.get_run(registry["runs"][0]).outputs.model_outputs[0].model_id
    classes = json.loads(client.get_registered_model(NAME).tags[CLASSES_TAG])
    version, champion = register_run_model(
        client, NAME, weak_model, registry["runs"][0], classes, min(scores) - 0.1
    )
    assert (version, champion) == ("3", best)


def test_champion_alias_serves_through_predict(
    registry: dict, tiny_synthetic_root: Path, tmp_path: Path
) -> None:
    image = next((tiny_synthetic_root / "VOCdevkit" / "VOC2012" / "JPEGImages").glob("*.jpg"))
    written = []
    for uri in (f"models:/{NAME}@{CHAMPION}", f"models:/{NAME}/2"):
        overrides = [f"model_uri={uri}", f"tracking_uri={registry['uri']}", f"input={image}",
                     f"output={tmp_path / uri[-1]}", "progress_bar=false"]  # fmt: skip
        (mask,) = predict(compose_entry("predict", overrides, tmp_path / "h"))
        written.append(mask.read_bytes())
    assert written[0] == written[1]


def test_a_name_holding_other_classes_is_refused(
    tiny_synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = new_store(tmp_path)
    client = MlflowClient(uri)
    client.create_registered_model(NAME, tags={CLASSES_TAG: json.dumps(["road", "car"])})
    with pytest.raises(ConfigError, match="holds a model of other classes"):
        register_run_model(client, NAME, "m-none", "run", ["background", "disc"], 0.5)
    run = tiny_run(tiny_synthetic_root, log_model=True)
    args = [*run, f"logger.tracking_uri={uri}", f"logger.register_model={NAME}"]
    with pytest.raises(SystemExit) as stopped:
        train(compose_train(args, output_dir=tmp_path / "run"))
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert f"logger.register_model={NAME!r} holds a model of other classes (road, car)" in err
    assert not client.search_model_versions(f"name = '{NAME}'")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("store", ["empty", "unreachable"])
def test_bad_model_uri_is_one_line_naming_it(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = new_store(tmp_path) if store == "empty" else f"http://127.0.0.1:{_closed_port()}"
    model_uri = f"models:/{NAME}@{CHAMPION}"
    (tmp_path / "x.png").write_bytes(b"")
    overrides = [f"model_uri={model_uri}", f"tracking_uri={uri}", f"input={tmp_path}",
                 f"output={tmp_path / 'out'}", "progress_bar=false"]  # fmt: skip
    with pytest.raises(SystemExit) as stopped:
        predict(compose_entry("predict", overrides, tmp_path / "h"))
    assert stopped.value.code == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    lines = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and f"model_uri={model_uri!r}" in lines[0], captured.err
    assert not (tmp_path / "out").exists()
