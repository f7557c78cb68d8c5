"""Sweeps on a SLURM cluster: checked before anything is recorded, requeued jobs continued, jobs
the cluster ended for good recorded on their MLflow child.

- `SlurmCheckCallback` (a Hydra callback, before the sweep's parent run is created) asks the
  cluster (`sinfo`) whether it answers and has the partition; if not the sweep stops with one line.
- A job the scheduler requeues continues its own run (seglab.run.requeue).
- `SlurmLauncher`: hydra-submitit-launcher's, except that a job that ended without a result
  (cancelled, out of time, node lost) closes its MLflow child KILLED with SLURM's reason
  instead of stopping the whole sweep, so the parent still records the best finished child.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import (
    SlurmLauncher as SubmititSlurmLauncher,
)
from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME
from omegaconf import DictConfig, OmegaConf

from seglab.errors import ConfigError, report_user_errors
from seglab.run.requeue import slurm_job_id
from seglab.tracking.run_file import read_run_file
from seglab.tracking.sweep import SweepParent, child_run_name

log = logging.getLogger(__name__)

SLURM_TIMEOUT_S = 30


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else "no output"


def check_cluster(partition: str | None) -> None:
    """Raise ConfigError unless the SLURM controller answers and has `partition` (None: the
    cluster's default partition)."""
    if shutil.which("sinfo") is None:
        raise ConfigError(
            "hydra/launcher=slurm: the SLURM client `sinfo` is not on PATH; run the sweep from a "
            "SLURM login node (or scripts/slurm_cluster.sh start for a local cluster)"
        )
    try:
        proc = subprocess.run(
            ["sinfo", "--noheader", "--format=%P %a"],
            capture_output=True,
            text=True,
            timeout=SLURM_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise ConfigError(
            f"hydra/launcher=slurm: the SLURM controller did not answer `sinfo` in "
            f"{SLURM_TIMEOUT_S} s; is slurmctld running (SLURM_CONF={os.environ.get('SLURM_CONF')})?"
        ) from error
    if proc.returncode != 0:
        raise ConfigError(
            f"hydra/launcher=slurm: cannot reach the SLURM cluster: "
            f"{_first_line(proc.stderr or proc.stdout)}"
        )
    states = {}
    for line in proc.stdout.splitlines():
        name, _, state = line.strip().partition(" ")
        states[name] = state  # the default partition is listed as `name*`
    if partition is None:
        if not any(name.endswith("*") for name in states):
            raise ConfigError(
                "hydra.launcher.partition is null but the cluster has no default partition; "
                f"choose one of {sorted(n.rstrip('*') for n in states)}"
            )
        return
    found = states.get(partition, states.get(f"{partition}*"))
    if found is None:
        raise ConfigError(
            f"hydra.launcher.partition={partition!r}: no such partition on the SLURM cluster; "
            f"expected one of {sorted(n.rstrip('*') for n in states)}"
        )
    if found != "up":
        raise ConfigError(
            f"hydra.launcher.partition={partition!r} is {found} (expected up): jobs would wait"
        )


def uses_slurm(config: DictConfig) -> bool:
    target = str((config.hydra.get("launcher") or {}).get("_target_", ""))
    return target.endswith("SlurmLauncher")


class SlurmCheckCallback(Callback):
    """Checks the cluster when a multirun starts, before its MLflow parent run exists."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if uses_slurm(config):  # a user error: one line and exit status 2, as train.py's own
            report_user_errors(check_cluster)(config.hydra.launcher.get("partition"))


def _close_killed_child(
    parent: SweepParent, job_dir: Path, overrides: list[str], num: int, reason: str
) -> None:
    """The MLflow child of a job the cluster ended for good: KILLED with `reason`."""
    client = MlflowClient(parent.tracking_uri)
    run = read_run_file(job_dir)
    if run is None:  # ended before its run existed: a child of its own, so the job shows up
        name = child_run_name(parent, overrides, num)
        tags = {
            MLFLOW_PARENT_RUN_ID: parent.run_id,
            MLFLOW_RUN_NAME: name,
            "seglab.job_num": str(num),
        }
        run_id = client.create_run(parent.experiment_id, tags=tags).info.run_id
    else:
        run_id = run["run_id"]
        if client.get_run(run_id).info.status in ("FINISHED", "FAILED"):
            return  # the job itself recorded how it ended
    client.set_tag(run_id, "seglab.error", reason)
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.KILLED))


# Job states after which a job never runs again (squeue's/scontrol's names); a requeued job goes
# back to PENDING instead.
ENDED_STATES = {
    "BOOT_FAIL",
    "CANCELLED",
    "COMPLETED",
    "DEADLINE",
    "FAILED",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "TIMEOUT",
}
POLL_S = 1.0


def job_state(job_id: str) -> str:
    """The job's state as the controller reports it (`scontrol show job`); GONE once the
    controller forgot it (MinJobAge after its end)."""
    proc = subprocess.run(
        ["scontrol", "--oneliner", "show", "job", job_id],
        capture_output=True,
        text=True,
        timeout=SLURM_TIMEOUT_S,
        check=False,
    )
    for field in proc.stdout.split():
        if field.startswith("JobState="):
            return field.partition("=")[2]
    return "GONE"


def wait_for_jobs(jobs: Sequence[Any]) -> list[str | None]:
    """Wait until every submitit job has a result or ended without one; per job None (it has a
    result) or why it has none.

    submitit's own wait asks `sacct`, which a cluster without accounting cannot answer (it
    would wait for ever on a cancelled job); the controller's `scontrol` always can.
    """
    ended: dict[int, str | None] = {}
    while len(ended) < len(jobs):
        for index, job in enumerate(jobs):
            if index in ended:
                continue
            if job.paths.result_pickle.exists():
                ended[index] = None
                continue
            state = job_state(job.job_id)
            if state in ENDED_STATES or state == "GONE":
                time.sleep(POLL_S)  # the result file of a job that just completed
                if job.paths.result_pickle.exists():
                    ended[index] = None
                else:
                    ended[index] = f"SLURM job {job.job_id} ended {state} without a result"
        if len(ended) < len(jobs):
            time.sleep(POLL_S)
    return [ended[index] for index in range(len(jobs))]


def requeue_before_time_limit(signum: int, frame: object) -> None:
    """The time-limit warning (`--signal=USR2@signal_delay_s`): requeue the job, as a
    preemption does. SLURM then sends SIGTERM, the run saves last.ckpt, and the restarted job
    continues it (seglab.run.requeue). Rank 0 alone asks."""
    if os.environ.get("SLURM_PROCID", "0") != "0":
        return
    job = slurm_job_id()
    log.warning("job %s: time limit near (signal %d), requeueing it", job, signum)
    subprocess.run(["scontrol", "requeue", job], check=False, timeout=SLURM_TIMEOUT_S)


class SlurmLauncher(SubmititSlurmLauncher):
    """hydra-submitit-launcher's SLURM launcher; a job the cluster ended without a result is a
    KILLED child (with SLURM's reason), reported to the sweeper as None, as failed jobs are.

    In the job, the time-limit warning requeues the job instead of submitit's own handler,
    which would stop the training without a checkpoint (it exits from inside the signal
    handler) and leave a FAILED child behind.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> JobReturn:
        import submitit

        usr_signal = submitit.JobEnvironment._usr_sig()  # USR2 unless SUBMITIT_PREEMPT_SIGNAL
        signal.signal(usr_signal, requeue_before_time_limit)
        return super().__call__(*args, **kwargs)

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        import submitit

        # The base launcher builds the executor from the config and submits; it then blocks on
        # each job's result, raising on the first job without one. Its submission is kept and
        # the waiting done here instead.
        jobs: list[Any] = []
        submit = submitit.AutoExecutor.map_array

        def submit_only(executor: submitit.AutoExecutor, fn: Any, *args: Any) -> list:
            jobs.extend(submit(executor, fn, *args))
            return []

        submitit.AutoExecutor.map_array = submit_only  # type: ignore[method-assign]
        try:
            super().launch(job_overrides, initial_job_idx)
        finally:
            submitit.AutoExecutor.map_array = submit  # type: ignore[method-assign]
        assert self.config is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        parent = SweepParent.load(sweep_dir.resolve())
        results = []
        reasons = wait_for_jobs(jobs)
        for offset, (job, overrides, reason) in enumerate(
            zip(jobs, job_overrides, reasons, strict=False)
        ):
            num = initial_job_idx + offset
            if reason is None:
                try:
                    results.append(job.results()[0])
                    continue
                except submitit.core.utils.FailedJobError as error:  # died outside the task
                    reason = f"SLURM job {job.job_id} failed: {_last_line(str(error))}"
            log.error("job #%d: %s (log: %s)", num, reason, job.paths.stderr)
            if parent is not None:
                _close_killed_child(parent, sweep_dir / str(num), list(overrides), num, reason)
            results.append(_no_result(list(overrides), num, sweep_dir))
        return results


def _no_result(overrides: list[str], num: int, sweep_dir: Path) -> JobReturn:
    """What a failed job reports to the sweeper (None), as seglab.run.sweep_job does."""
    ret = JobReturn(overrides=overrides, working_dir=str(sweep_dir / str(num)))
    ret.status = JobStatus.COMPLETED
    ret.return_value = None
    ret.cfg = OmegaConf.create()
    return ret
