"""`make server`: a real MLflow server with the basic-auth app on loopback; seglab logs to it with
credentials, is refused without them or without permission, and never records them."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import ROOT, run_entry_point, tiny_run
from tests.servers import free_port, wait_until_answering

pytestmark = pytest.mark.slow

ADMIN_PASSWORD = "admin-Pw-7f3k2q9x"  # planted: must never reach the store
ALICE = ("alice", "alice-Pw-5m8n1v4z")
BOB = ("bob", "bob-Pw-2c6h0j7w")
START_S = 240  # migrations of two sqlite stores on a loaded 2-core machine take ~1 min


def _make_server_command(**variables: str) -> list[str]:
    """The command `make server` runs, as make prints it, with this interpreter's environment."""
    args = [f"{k}={v}" for k, v in variables.items()]
    printed = subprocess.run(
        ["make", "-n", "server", f"BIN={Path(sys.executable).parent}", *args],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.replace("\\\n", " ")  # fmt: skip
    line = next(line for line in printed.splitlines() if "seglab.cli.server" in line)
    return shlex.split(line)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp("team_server")
    port = free_port()
    command = _make_server_command(
        SERVER_ROOT=str(tmp / "store"), SERVER_PORT=str(port), SERVER_ARGS="--workers 1"
    )
    assert command[command.index("--host") + 1] == "127.0.0.1"
    env = {**os.environ, "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD}
    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_URI"):
        env.pop(key, None)
    log = tmp / "server.log"
    started = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.Popen(
            command, cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(f"{url}/health", proc, log, "make server", START_S)
        print(f"make server answered after {time.monotonic() - started:.0f} s")
        yield {"url": url, "tmp": tmp, "store": tmp / "store"}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # mlflow serves from worker processes of its own
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _as(monkeypatch: pytest.MonkeyPatch, user: str, password: str) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)


def _train(server: dict, root: Path, name: str, user: tuple[str, str] | None):
    cwd = server["tmp"] / name
    cwd.mkdir()
    env = {}
    if user is not None:
        env = {"MLFLOW_TRACKING_USERNAME": user[0], "MLFLOW_TRACKING_PASSWORD": user[1]}
    args = tiny_run(root, train_batches=1, val_batches=1)
    return run_entry_point("train.py", args, cwd, tracking_uri=server["url"], env=env)


def _runs(server: dict, monkeypatch: pytest.MonkeyPatch) -> list:
    with monkeypatch.context() as m:
        _as(m, "admin", ADMIN_PASSWORD)
        client = MlflowClient(server["url"])
        experiment = client.get_experiment_by_name("synthetic")
        return client.search_runs([experiment.experiment_id]) if experiment else []


def test_team_server_logs_with_credentials_and_refuses_without(
    server: dict,
    tiny_synthetic_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from mlflow.server import get_app_client

    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(key, raising=False)
    with monkeypatch.context() as m:
        _as(m, "admin", ADMIN_PASSWORD)
        auth = get_app_client("basic-auth", tracking_uri=server["url"])
        for user, password in (ALICE, BOB):
            auth.create_user(user, password)

    # alice logs a run (she creates the experiment, so she manages it).
    started = time.monotonic()
    alice = _train(server, tiny_synthetic_root, "alice", ALICE)
    print(f"alice's run took {time.monotonic() - started:.0f} s")
    assert alice.returncode == 0, alice.stdout[-2000:] + alice.stderr[-3000:]
    (run,) = _runs(server, monkeypatch)
    assert run.info.status == "FINISHED" and "val/mIoU" in run.data.metrics
    assert run.data.tags["mlflow.user"] == "alice"

    # No credentials, then bob without a grant on alice's experiment: refused, nothing logged.
    for name, user, refusal in (
        ("nobody", None, "refused the credentials (401): set MLFLOW_TRACKING_USERNAME"),
        ("bob", BOB, "denied permission (403)"),
    ):
        proc = _train(server, tiny_synthetic_root, name, user)
        assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-3000:]
        error = proc.stderr.strip().splitlines()[-1]
        assert refusal in error and server["url"] in error, proc.stderr[-3000:]
        assert len(_runs(server, monkeypatch)) == 1

    # The credentials are nowhere in the run: params, tags, artifacts (downloaded as admin).
    secrets = [ADMIN_PASSWORD, ALICE[1], BOB[1]]
    texts = [*run.data.params.values(), *run.data.tags.values()]
    assert not [t for t in texts if any(s in t for s in secrets)]
    with monkeypatch.context() as m:
        _as(m, "admin", ADMIN_PASSWORD)
        local = Path(MlflowClient(server["url"]).download_artifacts(run.info.run_id, "", tmp_path))
    files = [p for p in local.rglob("*") if p.is_file()]
    assert any(p.name == "config.yaml" for p in files)
    for path in files:
        data = path.read_bytes()
        assert not any(s.encode() in data for s in secrets), path
    # ... nor in the server's own files (the password lives in the auth store only as a hash).
    for path in (server["store"] / "basic_auth.ini",):
        assert not any(s in path.read_text() for s in secrets)


def test_make_server_without_an_admin_password_says_so(tmp_path: Path) -> None:
    command = _make_server_command(SERVER_ROOT=str(tmp_path / "store"), SERVER_PORT="1")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_AUTH_ADMIN_PASSWORD"}
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "MLFLOW_AUTH_ADMIN_PASSWORD is not set" in proc.stderr
    assert not (tmp_path / "store").exists()
