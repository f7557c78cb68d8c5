"""Sweeps on a real SLURM cluster: munge, slurmctld and two slurmd (two nodes) on 127.0.0.1,
started by scripts/slurm_cluster.sh for this module (all SLURM tests live here, so xdist's
loadscope runs them in one worker) and stopped at its end when this module started it.

Skipped, with the script's reason, only where SLURM cannot be installed (no apt-get, not root,
apt-get failing); a cluster that is installed but does not start fails the tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import ROOT, new_store, run_multirun, tiny_run
from tests.test_ddp import DDP_JOB, SAME_NUMERICS, _assert_same_val_metrics

SCRIPT = ROOT / "scripts" / "slurm_cluster.sh"
PARTITION = "debug"
# The test cluster has 2 nodes of 2 CPUs and no GPUs: one task per job, one CPU, little memory.
ON_TEST_CLUSTER = [
    "hydra/launcher=slurm",
    f"hydra.launcher.partition={PARTITION}",
    "hydra.launcher.gpus_per_node=0",
    "hydra.launcher.tasks_per_node=1",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
]


def _cluster(action: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), action],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def slurm() -> Iterator[dict[str, str]]:
    """The local cluster, up; SLURM_CONF set here and returned for the commands tests start."""
    env = {"SEGLAB_SLURM_DIR": os.environ.get("SEGLAB_SLURM_DIR", "/tmp/seglab-slurm")}
    was_up = _cluster("status", env).returncode == 0
    started = time.monotonic()
    proc = _cluster("start", env)
    if proc.returncode != 0:
        reason = (proc.stderr or proc.stdout).strip()
        cannot_install = ("no apt-get", "needs root", "apt-get install slurm-wlm munge failed")
        if any(words in reason for words in cannot_install):  # e.g. no network, not root
            pytest.skip(f"no local SLURM cluster: {reason}")
        pytest.fail(f"scripts/slurm_cluster.sh start failed: {proc.stdout}{proc.stderr}")
    conf = f"{env['SEGLAB_SLURM_DIR']}/slurm.conf"
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = conf
    print(f"SLURM cluster up in {time.monotonic() - started:.1f} s (was up: {was_up})")
    try:
        # Jobs start in the submitting dir (a tmp dir): the stub network's `tests` package is
        # found through PYTHONPATH, as a user's own code would be.
        paths = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        yield {**env, "SLURM_CONF": conf, "PYTHONPATH": os.pathsep.join(paths)}
    finally:
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous
        if not was_up:
            _cluster("stop", env)


def _children(uri: str) -> tuple[object, dict[str, object]]:
    """The sweep's parent run and its children by job number."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("synthetic")
    runs = client.search_runs([exp.experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("seglab.sweep") == "true"]
    children = {
        int(r.data.tags["seglab.job_num"]): r
        for r in runs
        if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
    }
    assert len(runs) == 1 + len(children)
    return parent, children


def _steps(uri: str, run_id: str) -> list[int]:
    """The steps at which val/mIoU was logged."""
    history = MlflowClient(uri).get_metric_history(run_id, "val/mIoU")
    return sorted(m.step for m in history)


def test_cluster_script_is_idempotent(slurm: dict[str, str]) -> None:
    """`start` on a running cluster only checks it; `status` answers for the partition."""
    started = time.monotonic()
    assert _cluster("start", slurm).returncode == 0
    assert time.monotonic() - started < 10
    assert _cluster("status", slurm).returncode == 0
    info = subprocess.run(
        ["sinfo", "-h", "-o", "%P %a %c %D"], capture_output=True, text=True, check=True
    )
    assert info.stdout.split() == [f"{PARTITION}*", "up", "2", "2"]  # 2 nodes of 2 CPUs


@pytest.fixture(scope="module")
def unet_fpn_sweep(
    slurm: dict[str, str], tmp_path_factory: pytest.TempPathFactory, tiny_synthetic_root: Path
) -> dict:
    """The README's `python train.py -m hydra/launcher=slurm ... model=unet,fpn`, tiny."""
    tmp = tmp_path_factory.mktemp("slurm_grid")
    uri = new_store(tmp)
    run = tiny_run(tiny_synthetic_root, epochs=2, train_batches=1, val_batches=1, stub=False)
    proc = run_multirun([*ON_TEST_CLUSTER, "model=unet,fpn", *run], tmp / "sweep", uri, env=slurm)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return {"uri": uri, "sweep_dir": tmp / "sweep"}


@pytest.mark.slow
def test_sweep_jobs_run_under_srun_as_children_of_one_parent(unet_fpn_sweep: dict) -> None:
    uri, sweep_dir = unet_fpn_sweep["uri"], unet_fpn_sweep["sweep_dir"]
    parent, children = _children(uri)
    assert sorted(children) == [0, 1]
    assert {c.data.params["model.name"] for c in children.values()} == {"unet", "fpn"}
    job_ids = sorted(
        p.name
        for p in (sweep_dir / ".submitit").iterdir()
        if "_" in p.name and not p.name.startswith(".")
    )
    for num, child in children.items():
        assert child.info.status == "FINISHED"
        assert _steps(uri, child.info.run_id) == [0, 1]  # every epoch (of one batch), once
        # Run by SLURM (its job id on the child), as one srun task of the submitted script.
        job = child.data.tags["seglab.slurm_job_id"]
        assert job == job_ids[num]
        log = (sweep_dir / ".submitit" / job / f"{job}_0_log.out").read_text()
        assert "Job completed successfully" in log
    script = next((sweep_dir / ".submitit").glob("*/*_submission.sh")).read_text()
    assert "\nsrun " in script and "#SBATCH --requeue" in script
    assert parent.info.status == "FINISHED"
    best = max(children.values(), key=lambda c: c.data.metrics["best/val/mIoU"])
    assert parent.data.tags["seglab.best_run_id"] == best.info.run_id


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"the sweep ended before {path} existed"
        assert time.monotonic() < deadline, f"no {path} after {timeout} s"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def preempted_sweep(
    slurm: dict[str, str], tmp_path_factory: pytest.TempPathFactory, tiny_synthetic_root: Path
) -> dict:
    """Four jobs, once each has a checkpoint: #0 requeued (`scontrol requeue`, as a preemption
    does), #1 cancelled for good (`scancel`), #2 warned of its time limit (the `--signal=USR2`
    SLURM sends `signal_delay_s` before it), #3 failing (a negative learning rate)."""
    tmp = tmp_path_factory.mktemp("slurm_requeue")
    uri = new_store(tmp)
    sweep_dir = tmp / "sweep"
    args = [
        *ON_TEST_CLUSTER,
        "optim.lr=0.01,0.02,0.03,-1",
        *tiny_run(tiny_synthetic_root, epochs=8),
    ]
    cmd = [sys.executable, str(ROOT / "train.py"), "-m", *args, f"hydra.sweep.dir={sweep_dir}"]
    env = {**os.environ, **slurm, "MLFLOW_TRACKING_URI": uri, "PYTHONUNBUFFERED": "1"}
    log = tmp / "sweep.log"
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            for num in (0, 1, 2):
                _wait_for(sweep_dir / str(num) / "checkpoints" / "last.ckpt", proc)
            jobs = {
                int(p.name.rsplit("_", 1)[1]): p.name
                for p in (sweep_dir / ".submitit").iterdir()
                if "_" in p.name and not p.name.startswith(".")
            }
            subprocess.run(["scontrol", "requeue", jobs[0]], check=True)
            subprocess.run(["scancel", jobs[1]], check=True)
            subprocess.run(["scancel", "--signal=USR2", jobs[2]], check=True)
            proc.wait(timeout=600)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, log.read_text()[-5000:]
    return {"uri": uri, "sweep_dir": sweep_dir, "jobs": jobs, "log": log.read_text()}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("num", "cause"),
    [(0, "requeued SLURM job (restart 1)"), (2, "time limit near (signal 12), requeueing it")],
    ids=["scontrol-requeue", "time-limit-signal"],
)
def test_requeued_job_continues_its_run_and_output_dir(
    preempted_sweep: dict, num: int, cause: str
) -> None:
    uri, sweep_dir = preempted_sweep["uri"], preempted_sweep["sweep_dir"]
    parent, children = _children(uri)
    requeued = children[num]
    assert requeued.info.status == "FINISHED"
    # One point per epoch, none twice: 3 steps (batches) an epoch, logged at the epoch's end.
    assert _steps(uri, requeued.info.run_id) == [3 * epoch + 2 for epoch in range(8)]
    assert requeued.data.tags["seglab.resumed"] == "1"  # the same MLflow run, continued
    assert requeued.data.tags["seglab.slurm_restarts"] == "1"
    assert "seglab.failure" not in requeued.data.tags
    assert "seglab.error" not in requeued.data.tags
    assert requeued.data.tags["seglab.output_dir"] == str(sweep_dir / str(num))
    # One output dir per job: the restarted attempt found its own, nothing else was made.
    assert sorted(p.name for p in sweep_dir.iterdir() if p.name.isdigit()) == ["0", "1", "2", "3"]
    job_dir = sweep_dir / ".submitit" / preempted_sweep["jobs"][num]
    text = "".join(p.read_text() for p in job_dir.glob("*_log.*"))  # stdout and stderr
    assert cause in text
    assert "interrupted (SIGTERM)" in text and "requeued SLURM job (restart 1)" in text


@pytest.mark.slow
def test_cancelled_and_failed_jobs_and_the_parent(preempted_sweep: dict) -> None:
    uri = preempted_sweep["uri"]
    parent, children = _children(uri)
    cancelled, failed = children[1], children[3]
    assert cancelled.info.status == "KILLED"
    job = preempted_sweep["jobs"][1]
    assert (
        cancelled.data.tags["seglab.error"] == f"SLURM job {job} ended CANCELLED without a result"
    )
    assert cancelled.data.tags["seglab.failure"] == "interrupted (SIGTERM)"
    assert len(_steps(uri, cancelled.info.run_id)) < 8
    assert failed.info.status == "FAILED"
    assert "Invalid learning rate: -1" in failed.data.tags["seglab.error"]
    # The parent: finished, with the best of the two jobs that finished.
    assert parent.info.status == "FINISHED"
    best = max((children[0], children[2]), key=lambda c: c.data.metrics["best/val/mIoU"])
    assert parent.data.tags["seglab.best_run_id"] == best.info.run_id


def test_missing_partition_stops_before_anything_is_recorded(
    slurm: dict[str, str], tmp_path: Path
) -> None:
    uri = new_store(tmp_path)
    args = [*ON_TEST_CLUSTER, "hydra.launcher.partition=gpu", "model=unet,fpn"]
    proc = run_multirun(args, tmp_path / "sweep", uri, env=slurm)
    assert proc.returncode == 2, proc.stderr
    expected = (
        "error: hydra.launcher.partition='gpu': no such partition on the SLURM cluster; "
        "expected one of ['debug']"
    )
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr
    assert MlflowClient(uri).get_experiment_by_name("synthetic") is None
    assert not (tmp_path / "sweep" / ".submitit").exists()


def test_unreachable_cluster_stops_before_anything_is_recorded(
    slurm: dict[str, str], tmp_path: Path
) -> None:
    """A slurm.conf whose controller port nobody listens on: sinfo's own reason, one line."""
    conf = Path(slurm["SLURM_CONF"]).read_text().replace("SlurmctldPort=6817", "SlurmctldPort=6999")
    (tmp_path / "slurm.conf").write_text(conf)
    uri = new_store(tmp_path)
    env = {**slurm, "SLURM_CONF": str(tmp_path / "slurm.conf")}
    proc = run_multirun([*ON_TEST_CLUSTER, "model=unet,fpn"], tmp_path / "sweep", uri, env=env)
    assert proc.returncode == 2, proc.stderr
    assert "error: hydra/launcher=slurm: cannot reach the SLURM cluster: " in proc.stderr
    assert "Traceback" not in proc.stderr
    assert MlflowClient(uri).get_experiment_by_name("synthetic") is None


@pytest.mark.slow
def test_plain_srun_on_two_nodes_is_one_run(
    slurm: dict[str, str], tmp_path: Path, tiny_synthetic_root: Path
) -> None:
    """The README's `srun --nodes=2 --ntasks-per-node=1 python train.py trainer=ddp_cpu ...` on
    the two slurmd of the local cluster: srun starts one rank per node (Lightning reads them from SLURM's
    environment); one MLflow run, one output dir, metrics equal to a one-process validation."""
    uri = new_store(tmp_path)
    out = tmp_path / "run"
    cmd = [
        "srun",
        f"--partition={PARTITION}",
        "--nodes=2",
        "--ntasks-per-node=1",  # Lightning refuses a bare --ntasks
        sys.executable,
        str(ROOT / "train.py"),
        *DDP_JOB,
        "trainer.precision=32-true",
        "trainer.devices=1",
        "trainer.num_nodes=2",
        f"data.root={tiny_synthetic_root}",
        f"hydra.run.dir={out}",
    ]
    # The local cluster's node names (node1, node2) are not host names: the ranks meet on
    # loopback (on a real cluster Lightning takes the first node of SLURM_NODELIST).
    env = {
        **os.environ,
        **slurm,
        **SAME_NUMERICS,
        "MASTER_ADDR": "127.0.0.1",
        "MLFLOW_TRACKING_URI": uri,
        "PYTHONUNBUFFERED": "1",
    }
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in log  # the second task was rank 1, not a new run
    client = MlflowClient(uri)
    (only,) = client.search_runs([client.get_experiment_by_name("synthetic").experiment_id])
    assert only.info.status == "FINISHED"
    assert only.data.params["trainer.num_nodes"] == "2"
    assert sorted(p.parent for p in tmp_path.rglob("mlflow_run.json")) == [out]
    _assert_same_val_metrics(only, out / "checkpoints" / "last.ckpt", tiny_synthetic_root, tmp_path)
