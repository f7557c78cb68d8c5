"""A run killed with `kill -9`, resumed, interrupted with SIGTERM, resumed again: one MLflow run.

One chain of real `train.py` processes on tiny data (4 epochs of 2 batches) serves every test
here, including the credential scan: the run is started with a planted secret in its
environment and its config, and every param, tag and artifact of the finished run is searched.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from seglab.errors import ResumeError
from seglab.run.resume import load_resume
from tests.conftest import ROOT, new_store, run_entry_point, tiny_run

pytestmark = pytest.mark.slow

EPOCHS, BATCHES = 4, 2
ENV_SECRET = "planted-env-Secret-9f3b2c"  # in MLFLOW_TRACKING_PASSWORD
CONFIG_SECRET = "planted-config-Secret-51d7e0"  # in a config key named like a credential


def _start(args: list[str], cwd: Path, uri: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MLFLOW_TRACKING_URI": uri}
    env["MLFLOW_TRACKING_PASSWORD"] = ENV_SECRET
    cmd = [sys.executable, str(ROOT / "train.py"), *args, f"hydra.run.dir={cwd / 'run'}"]
    return subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _wait_for_checkpoint(proc: subprocess.Popen[str], path: Path, newer_than: float) -> None:
    deadline = time.monotonic() + 300
    while not (path.is_file() and path.stat().st_mtime > newer_than):
        assert proc.poll() is None, (
            f"run ended before a checkpoint: {proc.communicate()[0][-3000:]}"
        )
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.05)


@pytest.fixture(scope="module", params=["32-true", "bf16-mixed"])  # bf16 forced on any CPU
def chain(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    tiny_synthetic_root: Path,
) -> dict:
    tmp = tmp_path_factory.mktemp("resume")
    uri = new_store(tmp)
    # About the pipeline (kill, resume, SIGTERM, one run): the stub network.
    run = tiny_run(
        tiny_synthetic_root,
        epochs=EPOCHS,
        train_batches=BATCHES,
        val_batches=1,
        precision=request.param,
        overlays=2,
        sanity_check=True,
        log_model=True,
    )
    args = [
        *run,
        f"+logger.api_token={CONFIG_SECRET}",
        "+data.note=${oc.env:MLFLOW_TRACKING_PASSWORD}",  # a secret reaching an innocent key
    ]
    out = tmp / "first" / "run"
    last = out / "checkpoints" / "last.ckpt"
    (tmp / "first").mkdir()
    first = _start(args, tmp / "first", uri)
    _wait_for_checkpoint(first, last, 0)
    first.send_signal(signal.SIGKILL)  # no handler runs: the MLflow run stays RUNNING
    first.wait()
    killed_at = torch.load(last, weights_only=True)["global_step"]

    (tmp / "second").mkdir()
    second = _start([f"resume={out}"], tmp / "second", uri)
    mtime = last.stat().st_mtime
    _wait_for_checkpoint(second, last, mtime)
    second.send_signal(signal.SIGTERM)
    second_log = second.communicate(timeout=300)[0]
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("synthetic").experiment_id])
    status_after_sigterm = run.info.status
    terminated_at = torch.load(last, weights_only=True)["global_step"]

    (tmp / "third").mkdir()
    # Resumed without the secret in the environment: the masked keys are remembered.
    third = run_entry_point("train.py", [f"resume={out}"], tmp / "third", tracking_uri=uri)
    return {
        "client": client,
        "uri": uri,
        "out": out,
        "killed_at": killed_at,
        "second": (second.returncode, second_log, status_after_sigterm, terminated_at),
        "third": third,
    }


def test_sigterm_saves_a_checkpoint_and_marks_the_run_killed(chain: dict) -> None:
    returncode, log, status, terminated_at = chain["second"]
    assert returncode == 128 + signal.SIGTERM, log[-3000:]
    assert status == "KILLED"
    assert "interrupted (SIGTERM)" in log and f"resume={chain['out']}" in log
    assert terminated_at > chain["killed_at"], log[-3000:]


def test_resumed_run_finishes_as_one_mlflow_run_without_gaps_or_duplicates(chain: dict) -> None:
    third = chain["third"]
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    client: MlflowClient = chain["client"]
    runs = client.search_runs([client.get_experiment_by_name("synthetic").experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.tags["seglab.resumed"] == "2"
    assert "seglab.failure" not in run.data.tags
    # Validation and the epoch's train loss are logged at each epoch's last step.
    epoch_steps = [BATCHES * (epoch + 1) - 1 for epoch in range(EPOCHS)]
    for key in ("val/mIoU", "val/loss", "train/loss"):
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        assert sorted(steps) == epoch_steps, (key, steps)
    # System metrics continue across the attempts: one point per step, none twice (the SIGTERM'd
    # attempt logs its last point when Lightning reports the interrupt).
    cpu = client.get_metric_history(run.info.run_id, "system/cpu_utilization_percentage")
    cpu_steps = sorted(m.step for m in cpu)
    assert len(cpu_steps) >= 2 and cpu_steps == list(range(len(cpu_steps))), cpu_steps
    lr_steps = [m.step for m in client.get_metric_history(run.info.run_id, "lr-AdamW")]
    assert len(lr_steps) == len(set(lr_steps)) == EPOCHS
    final = torch.load(chain["out"] / "checkpoints" / "last.ckpt", weights_only=True)
    assert final["epoch"] == EPOCHS and final["global_step"] == EPOCHS * BATCHES  # after the last
    # The attempt that finished logged the run's MLflow model, once (killed ones log none).
    (output,) = client.get_run(run.info.run_id).outputs.model_outputs
    assert client.get_logged_model(output.model_id).name == "model"


def test_no_credential_reaches_params_tags_or_artifacts(chain: dict, tmp_path: Path) -> None:
    client: MlflowClient = chain["client"]
    (run,) = client.search_runs([client.get_experiment_by_name("synthetic").experiment_id])
    assert run.data.params["logger.api_token"] == "***"
    assert run.data.params["data.note"] == "***"
    texts = [*run.data.params.values(), *run.data.params, *run.data.tags.values()]
    assert "api_token=***" in run.data.tags["seglab.command"]
    for text in texts:
        assert ENV_SECRET not in text and CONFIG_SECRET not in text, text

    def files(path: str | None = None) -> list[str]:
        found = []
        for item in client.list_artifacts(run.info.run_id, path):
            found += files(item.path) if item.is_dir else [item.path]
        return found

    artifacts = files()
    assert {"config/config.yaml", "checkpoints/best.ckpt"} <= set(artifacts)
    local = Path(client.download_artifacts(run.info.run_id, "", str(tmp_path)))
    for name in artifacts:
        data = (local / name).read_bytes()
        assert ENV_SECRET.encode() not in data and CONFIG_SECRET.encode() not in data, name
    # The output dir's own config.yaml is complete (resume= needs it); checkpoints are not.
    assert CONFIG_SECRET in (chain["out"] / "config.yaml").read_text()
    for ckpt in (chain["out"] / "checkpoints").glob("*.ckpt"):
        assert ENV_SECRET.encode() not in ckpt.read_bytes()


def test_resume_refuses_overrides_and_explains(chain: dict) -> None:
    with pytest.raises(ResumeError, match=r"optim.lr=0.1 would change it"):
        load_resume(str(chain["out"]), overrides=[f"resume={chain['out']}", "optim.lr=0.1"])
    resumed = load_resume(str(chain["out"]), overrides=[f"resume={chain['out']}"])
    assert resumed.cfg.ckpt_path == str(chain["out"] / "checkpoints" / "last.ckpt")
    assert resumed.cfg.logger.tracking_uri == chain["uri"]


def test_resume_without_a_checkpoint_says_so(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("seed: 1\n")
    with pytest.raises(ResumeError, match="before its first checkpoint"):
        load_resume(str(tmp_path), overrides=[])
    with pytest.raises(ResumeError, match="no such folder"):
        load_resume(str(tmp_path / "missing"), overrides=[])
