"""`python train.py resume=<run output dir>`: continue a stopped run where it left off.

A run's output dir holds everything needed: `config.yaml` (the resolved config), the MLflow
run id (`mlflow_run.json`) and `checkpoints/last.ckpt` (written every epoch, and on Ctrl-C or
SIGTERM). Resuming restores the model, optimizer, scheduler, epoch and step from the
checkpoint and logs into *the same* MLflow run. Metric points the stopped attempt already
logged past the checkpoint are not logged again, so each step keeps exactly one point.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow.exceptions import MlflowException
from omegaconf import DictConfig, OmegaConf

from seglab.callbacks.guards import FAILURE_TAG
from seglab.errors import ResumeError
from seglab.run.context import hydra_overrides
from seglab.tracking.logger import SeglabMLFlowLogger
from seglab.tracking.run_file import read_run_file

CONFIG_FILE = "config.yaml"
LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"
RESUMED_TAG = "seglab.resumed"  # how many times the run was resumed


@dataclass
class Resumed:
    """A stopped run to continue: its config, checkpoint and MLflow run id."""

    cfg: DictConfig
    out_dir: Path
    checkpoint: Path
    run_id: str | None
    masked: list[str]  # config paths masked as credentials when the run started


def _relocate(node: Any, old: str, new: str) -> Any:
    """Paths under the run's old output dir moved to `new` (the folder may have been moved)."""
    if isinstance(node, dict):
        return {k: _relocate(v, old, new) for k, v in node.items()}
    if isinstance(node, list):
        return [_relocate(v, old, new) for v in node]
    if isinstance(node, str) and (node == old or node.startswith(old + "/")):
        return new + node[len(old) :]
    return node


def load_resume(resume: str, overrides: list[str] | None = None) -> Resumed:
    """The saved config of run dir `resume`, set to continue from its last checkpoint.

    `overrides` (default: the command line's) may hold nothing but `resume=` itself.
    """
    out_dir = Path(resume).expanduser().resolve()
    if not out_dir.is_dir():
        raise ResumeError(
            f"resume={resume!r}: no such folder (expected a run output dir, runs/train/<stamp>)"
        )
    config_file, checkpoint = out_dir / CONFIG_FILE, out_dir / LAST_CHECKPOINT
    if not config_file.is_file():
        raise ResumeError(
            f"resume={resume!r}: {config_file} is missing; is this a train.py output dir?"
        )
    if not checkpoint.is_file():
        raise ResumeError(
            f"resume={resume!r}: no {checkpoint}; the run stopped before its first checkpoint "
            "(end of the first epoch), so there is nothing to continue: start it again"
        )
    overrides = hydra_overrides() if overrides is None else overrides
    extra = [o for o in overrides if not o.lstrip("+~").startswith("resume=")]
    if extra:
        raise ResumeError(
            f"resume= continues a run with its saved config ({config_file}); the overrides "
            f"{' '.join(extra)} would change it. To change the config, start a new run "
            f"(ckpt_path={checkpoint} starts it from that checkpoint)"
        )
    container = OmegaConf.to_container(OmegaConf.load(config_file))
    assert isinstance(container, dict)
    old_dir = str(container.get("paths", {}).get("output_dir", out_dir))
    container = _relocate(container, old_dir, str(out_dir))
    container["resume"] = str(out_dir)
    container["ckpt_path"] = str(checkpoint)
    run_id, masked = None, []
    run = read_run_file(out_dir)
    if run is not None:
        run_id, masked = run["run_id"], list(run.get("masked", []))
        # The store the run lives in, whatever MLFLOW_TRACKING_URI says today.
        container.setdefault("logger", {})["tracking_uri"] = run["tracking_uri"]
    return Resumed(OmegaConf.create(container), out_dir, checkpoint, run_id, masked)


def reopen_run(logger: SeglabMLFlowLogger, resumed: Resumed) -> None:
    """Mark the MLflow run RUNNING again and remember which metric points it already has."""
    try:
        client = logger.experiment
        run = client.get_run(resumed.run_id)
    except MlflowException as error:
        raise ResumeError(
            f"resume={resumed.out_dir}: MLflow run {resumed.run_id} is not in "
            f"{logger.tracking_uri} ({error.message})"
        ) from error
    if run.info.lifecycle_stage == "deleted":
        raise ResumeError(f"resume={resumed.out_dir}: MLflow run {resumed.run_id} was deleted")
    run_id = run.info.run_id
    logger.logged_steps = {
        key: {m.step for m in client.get_metric_history(run_id, key)} for key in run.data.metrics
    }
    client.update_run(run_id, status="RUNNING")
    if FAILURE_TAG in run.data.tags:  # why it stopped last time no longer describes the run
        client.delete_tag(run_id, FAILURE_TAG)
    client.set_tag(run_id, RESUMED_TAG, str(int(run.data.tags.get(RESUMED_TAG, "0")) + 1))
