"""Runs that go wrong end clearly: NaN loss, unreachable store, credentials, unsafe loading."""

from __future__ import annotations

import http.server
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from mlflow.tracking import MlflowClient

from seglab.cli.train import train
from seglab.errors import SeglabError, TrackingStoreError
from seglab.tasks.checkpoint import read_checkpoint
from seglab.tracking.secrets import (
    environment_secrets,
    is_secret_name,
    redact_config,
    redact_params,
    redact_text,
)
from seglab.tracking.store import check_tracking_store
from tests.conftest import ROOT, TINY_DATA, compose_train, new_store, tiny_run


class PoisonWeights(pl.Callback):
    """Turns one weight tensor into NaN when the second epoch starts (after a good checkpoint)."""

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch == 1:
            with torch.no_grad():
                next(pl_module.parameters()).fill_(math.nan)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the block ends


def test_nan_loss_stops_naming_the_step_keeps_the_good_checkpoint_and_fails_the_run(
    tmp_path: Path, tiny_synthetic_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = new_store(tmp_path)
    cfg = compose_train(
        [
            *tiny_run(
                tiny_synthetic_root,
                epochs=3,
                train_batches=2,
                val_batches=1,
                overlays=0,
                sanity_check=True,
            ),
            f"logger.tracking_uri={uri}",
            "+callbacks.poison._target_=tests.test_robustness.PoisonWeights",
        ],
        output_dir=tmp_path / "out",
    )
    with pytest.raises(SystemExit) as stopped:
        train(cfg)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "training loss became nan at step 2 (epoch 1, batch 0)" in " ".join(err.split())
    assert "Traceback" not in err
    last = read_checkpoint(tmp_path / "out" / "checkpoints" / "last.ckpt")
    assert last["global_step"] == 2  # written at the start of epoch 1, before the poison
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values())
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("synthetic").experiment_id])
    assert run.info.status == "FAILED"
    assert "training loss became nan at step 2" in run.data.tags["seglab.failure"]


def test_unreachable_tracking_server_fails_fast_before_training(
    tmp_path: Path,
    tiny_synthetic_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    uri = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    cfg = compose_train(
        [*TINY_DATA, f"data.root={tiny_synthetic_root}"], output_dir=tmp_path / "out"
    )
    start = time.monotonic()
    with pytest.raises(SystemExit) as stopped:
        train(cfg)
    assert stopped.value.code == 2
    assert time.monotonic() - start < 30  # MLflow's own retries would take minutes
    message = " ".join(capsys.readouterr().err.split())
    assert f"MLFLOW_TRACKING_URI '{uri}' is unreachable" in message
    assert "Traceback" not in message
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_store_check_accepts_a_live_server_and_local_stores(tmp_path: Path) -> None:
    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        check_tracking_store(f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
    check_tracking_store(f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}")
    assert (tmp_path / "new").is_dir()
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(TrackingStoreError, match="cannot create"):
        check_tracking_store(f"sqlite:///{blocker / 'sub' / 'mlflow.db'}")
    with pytest.raises(TrackingStoreError, match="unreachable"):
        check_tracking_store(f"http://127.0.0.1:{_closed_port()}", timeout=2)


def test_secret_names_and_values_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MLFLOW_TRACKING_PASSWORD", "AWS_SECRET_ACCESS_KEY", "logger.api_token",
                 "hfToken", "db.password", "GITHUB_TOKEN", "private_key"):  # fmt: skip
        assert is_secret_name(name), name
    for name in ("TOKENIZERS_PARALLELISM", "PWD", "model.encoder", "monitor", "data.root"):
        assert not is_secret_name(name), name
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI-planted")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    assert environment_secrets() == ["wJalrXUtnFEMI-planted"]
    assert redact_text("s3://x?k=wJalrXUtnFEMI-planted") == "s3://x?k=***"
    assert redact_text("https://bob:hunter22@mlflow.example") == "https://bob:***@mlflow.example"
    assert redact_text("train.py +db.password=abc optim.lr=0.1") == (
        "train.py +db.password=*** optim.lr=0.1"
    )
    assert redact_params({"a.token": "x", "b": "false"}) == {"a.token": "***", "b": "false"}
    nested = {"db": {"password": "p", "host": "h"}, "l": ["wJalrXUtnFEMI-planted"], "n": 3}
    assert redact_config(nested) == {"db": {"password": "***", "host": "h"}, "l": ["***"], "n": 3}


def test_checkpoints_load_only_with_weights_only(tmp_path: Path) -> None:
    class Payload:
        def __reduce__(self) -> tuple:
            return (print, ("code ran while loading",))

    path = tmp_path / "evil.ckpt"
    torch.save({"hyper_parameters": {"model": {}, "loss": {}, "data": {}}, "x": Payload()}, path)
    with pytest.raises(SeglabError, match="weights_only=True"):
        read_checkpoint(path)


def test_train_from_a_checkpoint_refuses_unsafe_or_unfitting_files(
    tmp_path: Path,
    tiny_synthetic_root: Path,
    tiny_checkpoint: dict,
    capsys: pytest.CaptureFixture[str],
) -> None:
    marker = tmp_path / "payload-ran"

    class Payload:
        def __reduce__(self) -> tuple:
            return (Path.touch, (marker,))

    evil = tmp_path / "evil.ckpt"
    torch.save({"hyper_parameters": {"model": {}, "loss": {}, "data": {}}, "x": Payload()}, evil)
    base = [*TINY_DATA, f"data.root={tiny_synthetic_root}", "trainer.max_epochs=1"]
    for ckpt, extra, expected in (
        (evil, [], "cannot be opened safely (weights_only=True)"),
        (tiny_checkpoint["ckpt"], ["model=fpn"], "does not fit the configured model"),
    ):
        cfg = compose_train([*base, *extra, f"ckpt_path={ckpt}"], output_dir=tmp_path / "out")
        with pytest.raises(SystemExit) as stopped:
            train(cfg)
        assert stopped.value.code == 2
        assert expected in " ".join(capsys.readouterr().err.split())
    assert not marker.exists()
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_make_ui_binds_loopback_only() -> None:
    proc = subprocess.run(
        ["make", "-n", "ui"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    commands = proc.stdout.replace("\\\n", " ").splitlines()
    command = next(line for line in commands if "seglab.cli.ui" in line)
    assert "--host 127.0.0.1" in command
    assert "0.0.0.0" not in proc.stdout


STORE: dict[str, subprocess.Popen[bytes]] = {}  # the test's `mlflow server`


class StopStoreAfterFirstEpoch(pl.Callback):
    """Kills the tracking server (`STORE["server"]`) once the first epoch has been logged."""

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch == 0:
            _kill_server()


def _kill_server() -> None:
    """The whole process group: `mlflow server` serves from worker processes of its own."""
    server = STORE["server"]
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def _start_mlflow_server(tmp: Path) -> str:
    port = _closed_port()
    STORE["server"] = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{tmp / 'server.db'}",
            "--artifacts-destination",
            str(tmp / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            check_tracking_store(uri, timeout=1)
            return uri
        except TrackingStoreError:
            assert STORE["server"].poll() is None, "mlflow server did not start"
            assert time.monotonic() < deadline, "mlflow server not up within 120 s"
            time.sleep(0.5)


@pytest.mark.slow
def test_store_failing_mid_run_keeps_training_and_its_checkpoints(
    tmp_path: Path,
    tiny_synthetic_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    uri = _start_mlflow_server(tmp_path)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # fail in seconds, not minutes
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    cfg = compose_train(
        [
            *tiny_run(
                tiny_synthetic_root,
                epochs=3,
                train_batches=2,
                val_batches=1,
                plots=True,
                sanity_check=True,
                log_model=True,
            ),
            f"logger.tracking_uri={uri}",
            "+callbacks.stop_store._target_=tests.test_robustness.StopStoreAfterFirstEpoch",
        ],
        output_dir=tmp_path / "out",
    )
    try:  # the run's MLflow model cannot be logged either: a warning, the checkpoint kept
        with pytest.warns(UserWarning, match=r"could not log the model of .*best\.ckpt"):
            train(cfg)
    finally:
        _kill_server()
        STORE.clear()
    checkpoints = tmp_path / "out" / "checkpoints"
    assert read_checkpoint(checkpoints / "last.ckpt")["global_step"] == 6  # all 3 epochs
    assert any(p.name != "last.ckpt" for p in checkpoints.glob("*.ckpt"))  # the best one too
    out = " ".join(capsys.readouterr().out.split())
    assert "warning: the MLflow store failed" in out
    assert "the checkpoints and the output dir are complete" in out
