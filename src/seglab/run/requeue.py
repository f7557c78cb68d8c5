"""A SLURM job that the scheduler requeued continues its stopped run (`resume=` semantics).

Preemption, `scontrol requeue` or a node failure send the job SIGTERM: the run saves
`last.ckpt` and ends KILLED. SLURM then restarts the same job id with `SLURM_RESTART_COUNT` > 0,
and submitit runs the same pickled Hydra job, hence the same output dir (a plain `sbatch` script
gets the same by pinning `hydra.run.dir` to the job id). That dir holds the config, checkpoint
and MLflow run id, so the restarted job continues the same run instead of starting a new one.
"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig

from seglab.run.resume import CONFIG_FILE, LAST_CHECKPOINT


def restart_count() -> int:
    """How many times SLURM requeued this job (0 outside SLURM)."""
    try:
        return int(os.environ.get("SLURM_RESTART_COUNT", "0"))
    except ValueError:
        return 0


def requeued_run_dir(cfg: DictConfig) -> Path | None:
    """The output dir to continue when this process is a requeued SLURM job whose earlier
    attempt saved a checkpoint there (else None: the run starts from scratch)."""
    if restart_count() == 0 or cfg.get("resume") or "paths" not in cfg:
        return None
    out_dir = Path(str(cfg.paths.output_dir))
    if (out_dir / CONFIG_FILE).is_file() and (out_dir / LAST_CHECKPOINT).is_file():
        return out_dir
    return None


def slurm_job_id() -> str:
    """This job's id as scontrol takes it (`<array job>_<task>` for a task of an array)."""
    array_job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array_job}_{task}" if array_job and task else os.environ["SLURM_JOB_ID"]
