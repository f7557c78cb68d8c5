"""Hydra multiruns and Optuna searches recorded as MLflow parent/child runs; SLURM submission."""

from __future__ import annotations

import math
import os
from pathlib import Path

import hydra.utils
import optuna
import pytest
import submitit
from hydra import compose, initialize_config_dir
from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from seglab.errors import ConfigError
from seglab.tracking.sweep import (
    SWEEP_FILE,
    SweepParent,
    check_direction,
    child_run_name,
    sweep_run_name,
)
from tests.conftest import CONF_DIR, FAST_JOB, new_store, run_multirun

PARENT_TAG = "mlflow.parentRunId"


def _runs(uri: str, experiment: str = "synthetic") -> tuple[object, list]:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("seglab.sweep") == "true"]
    assert len(parents) == 1, [r.info.run_name for r in parents]
    children = [r for r in runs if r.data.tags.get(PARENT_TAG) == parents[0].info.run_id]
    assert len(runs) == 1 + len(children)  # nothing else was recorded
    return parents[0], children


@pytest.mark.slow
def test_grid_is_one_parent_with_a_child_per_job(sweep_store: dict) -> None:
    client = MlflowClient(sweep_store["uri"])
    parent, children = _runs(sweep_store["uri"])
    assert len(children) == 4
    names = [c.info.run_name for c in children]
    assert len(set(names)) == 4
    # Each child holds its own job's params: the 4 (model, loss) pairs, once each.
    pairs = {
        (c.data.params["model.name"], "ce" if "loss.label_smoothing" in c.data.params else "dice")
        for c in children
    }
    assert pairs == {("unet", "ce"), ("unet", "dice"), ("fpn", "ce"), ("fpn", "dice")}
    for child in children:
        assert child.info.status == "FINISHED"
        name, params = child.info.run_name, child.data.params
        assert f"model={params['model.name']}" in name  # named after its own overrides
        assert "trainer.max_epochs" not in name  # ... not the ones every job shares
        history = [m.value for m in client.get_metric_history(child.info.run_id, "val/mIoU")]
        assert len(history) == 2
        assert child.data.metrics["best/val/mIoU"] == pytest.approx(max(history))

    assert parent.info.status == "FINISHED"
    assert parent.info.run_name == "sweep model=unet,fpn loss=ce,dice"
    assert parent.data.params["model"] == "unet,fpn"
    assert parent.data.params["loss"] == "ce,dice"
    assert parent.data.params["trainer.max_epochs"] == "2"
    best = max(children, key=lambda c: c.data.metrics["best/val/mIoU"])
    assert parent.data.metrics["best/val/mIoU"] == best.data.metrics["best/val/mIoU"]
    assert parent.data.tags["seglab.best_run_id"] == best.info.run_id
    assert parent.data.tags["seglab.best_run_name"] == best.info.run_name
    saved = SweepParent.load(sweep_store["sweep_dir"])
    assert saved is not None and saved.run_id == parent.info.run_id
    # One output dir per job, each holding the run it belongs to.
    for job in range(4):
        assert (sweep_store["sweep_dir"] / str(job) / "mlflow_run.json").is_file()


def _seed_with_one_failure(choices: tuple[float, ...], n_trials: int, bad: float) -> int:
    """A seed for which the search's (seeded TPE) first trials pick `bad` exactly once.

    Replays the sweeper's own sampling: ask a trial, suggest the categorical, tell the result.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for seed in range(200):
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=5)
        study = optuna.create_study(sampler=sampler, direction="maximize")
        picks = []
        for _ in range(n_trials):
            trial = study.ask()
            picks.append(trial.suggest_categorical("optim.lr", choices))
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        if picks.count(bad) == 1:
            return seed
    raise AssertionError("no seed gives exactly one failing trial")


@pytest.mark.slow
def test_optuna_search_records_failed_trials_and_the_best(
    tmp_path: Path, tiny_synthetic_root: Path
) -> None:
    """3 trials over lr; lr=-1 makes AdamW raise inside fit: that trial fails, the others run."""
    seed = _seed_with_one_failure((0.001, 0.003, -1.0), 3, -1.0)
    uri = new_store(tmp_path)
    args = [
        "hparams_search=optuna",
        "hydra.sweeper.params=null",  # the search space is given on the command line instead
        "optim.lr=choice(0.001,0.003,-1.0)",
        "hydra.sweeper.n_trials=3",
        f"seed={seed}",
        *FAST_JOB,
        f"data.root={tiny_synthetic_root}",
    ]
    proc = run_multirun(args, tmp_path / "sweep", uri)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    parent, children = _runs(uri)
    assert len(children) == 3
    failed = [c for c in children if c.info.status == "FAILED"]
    finished = [c for c in children if c.info.status == "FINISHED"]
    assert len(failed) == 1 and len(finished) == 2
    assert failed[0].data.params["optim.lr"] == "-1.0"
    assert "Invalid learning rate" in failed[0].data.tags["seglab.error"]
    assert "best/val/mIoU" not in failed[0].data.metrics
    best = max(finished, key=lambda c: c.data.metrics["best/val/mIoU"])
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["seglab.best_run_id"] == best.info.run_id
    assert parent.data.params["sweeper"] == "OptunaSweeper"
    assert parent.data.params["sweeper.direction"] == "maximize"
    # Optuna saw the same objective that MLflow recorded.
    results = OmegaConf.load(tmp_path / "sweep" / "optimization_results.yaml")
    assert results.best_value == pytest.approx(parent.data.metrics["best/val/mIoU"])
    assert float(best.data.params["optim.lr"]) == results.best_params["optim.lr"]
    assert (tmp_path / "sweep" / SWEEP_FILE).is_file()


def _compose_with_hydra(overrides: list[str]) -> OmegaConf:
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=True)


def test_optuna_config_is_a_seeded_tpe_search_over_the_issue_space() -> None:
    cfg = _compose_with_hydra(["hparams_search=optuna"])
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper")
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler"
    assert sweeper.sampler.seed == cfg.seed
    assert sweeper.direction == "maximize" and sweeper.storage is None
    assert cfg.hydra.mode.name == "MULTIRUN"
    assert {"optim.lr", "optim.weight_decay", "loss", "model.encoder"} <= set(sweeper.params)
    assert check_direction(cfg) == "max"
    # Every loss and encoder the search can pick composes and exists.
    for value in sweeper.params["loss"].removeprefix("choice(").removesuffix(")").split(","):
        assert (CONF_DIR / "loss" / f"{value.strip()}.yaml").is_file()


def test_sweep_direction_must_agree_with_optimized_mode() -> None:
    cfg = _compose_with_hydra(["hparams_search=optuna", "optimized_mode=min"])
    with pytest.raises(ConfigError, match="hydra.sweeper.direction=maximize"):
        check_direction(cfg)


def test_run_names_say_what_varies() -> None:
    sweep = ["model=unet,fpn", "loss=ce,dice", "trainer.max_epochs=2", "hparams_search=optuna"]
    parent = SweepParent("id", "uri", "0", "exp", sweep, "val/mIoU", "max")
    job = ["model=fpn", "loss=ce", "trainer.max_epochs=2", "hparams_search=optuna", "optim.lr=0.01"]
    assert child_run_name(parent, job, 3) == "#3 model=fpn,loss=ce,optim.lr=0.01"
    assert sweep_run_name(sweep) == "sweep model=unet,fpn loss=ce,dice"
    assert sweep_run_name(["hparams_search=optuna"]) == "sweep hparams_search=optuna"


def test_slurm_launcher_writes_a_ddp_job_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real launcher builds the real submitit executor; its sbatch script is checked."""
    overrides = [
        "hydra/launcher=slurm",
        "trainer=ddp",
        "trainer.num_nodes=2",
        "hydra.launcher.gpus_per_node=4",
        "hydra.launcher.partition=gpu",
        "hydra.launcher.timeout_min=90",
        f"hydra.sweep.dir={tmp_path}",
    ]
    cfg = _compose_with_hydra(overrides)
    # submitit refuses to build a SLURM executor where `srun` is missing; it is never run here.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    launcher = hydra.utils.instantiate(cfg.hydra.launcher)
    launcher.setup(hydra_context=None, task_function=lambda c: None, config=cfg)
    captured = {}

    def fake_map_array(self: submitit.AutoExecutor, fn: object, *args: object) -> list:
        captured["executor"] = self
        return []

    monkeypatch.setattr(submitit.AutoExecutor, "map_array", fake_map_array)
    launcher.launch([["optim.lr=0.001"]], initial_job_idx=0)
    slurm = captured["executor"]._executor
    script = slurm._make_submission_file_text("python -u -m submitit.core._submit X", "uid")
    for line in (
        "#SBATCH --partition=gpu",
        "#SBATCH --nodes=2",
        "#SBATCH --gpus-per-node=4",
        "#SBATCH --ntasks-per-node=4",  # one task = one DDP rank per GPU
        "#SBATCH --time=90",
        "#SBATCH --cpus-per-task=8",
    ):
        assert line in script, script
    assert "srun" in script
    assert str(tmp_path / ".submitit") in script
    # The job itself: DDP over nccl, ranks from SLURM, BatchNorm synced, nodes from the trainer.
    assert cfg.trainer.strategy.process_group_backend == "nccl"
    assert cfg.trainer.sync_batchnorm is True and cfg.trainer.num_nodes == 2


@pytest.mark.slow
def test_joblib_grid_runs_jobs_with_dataloader_workers(
    tmp_path: Path, tiny_synthetic_root: Path
) -> None:
    """The README's `hydra/launcher=joblib hydra.launcher.n_jobs=2`, 4 real jobs, 1 loader worker.

    Inside joblib's (loky) processes DataLoader workers used to die at start ("'Process' object
    has no attribute 'env'"); every job failed. Two jobs at a time write into one sqlite store.
    """
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [
        "model=unet,fpn",
        "optim.lr=1e-3,3e-3",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        *FAST_JOB,
        "data.num_workers=1",
        f"data.root={tiny_synthetic_root}",
    ]
    proc = run_multirun(args, tmp_path / "sweep", uri)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    parent, children = _runs(uri)
    assert parent.info.status == "FINISHED"
    assert parent.data.params["launcher"] == "JoblibLauncher"
    assert len(children) == 4
    client = MlflowClient(uri)
    for child in children:
        assert child.info.status == "FINISHED", child.data.tags.get("seglab.error")
        assert child.data.params["data.num_workers"] == "1"
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "val/mIoU")]
        assert len(steps) == 2 and len(set(steps)) == 2  # every epoch, none lost or twice
    # Two jobs really ran at a time: some job started before another ended. A job starts when
    # Hydra writes its .hydra/config.yaml in the worker, before the imports and the MLflow run (the
    # runs alone need not overlap: one worker's imports can outlast the other's short run).
    spans = sorted((_job_started_ms(tmp_path / "sweep", c), c.info.end_time) for c in children)
    assert any(b_start < a_end for (_, a_end), (b_start, _) in zip(spans, spans[1:], strict=False))
    assert "database is locked" not in proc.stdout + proc.stderr


def _job_started_ms(sweep_dir: Path, child: Run) -> int:
    """When the child's job began: Hydra writes <sweep>/<job num>/.hydra/config.yaml first."""
    config = sweep_dir / child.data.tags["seglab.job_num"] / ".hydra" / "config.yaml"
    return int(config.stat().st_mtime * 1000)


def test_failed_jobs_become_failed_children_in_process(tmp_path: Path) -> None:
    """A NaN objective and a user error (before any run existed) → FAILED children, sweep on."""
    from hydra.core.hydra_config import HydraConfig

    from seglab.errors import report_user_errors
    from seglab.run.sweep_job import sweep_job
    from seglab.tracking.sweep import MLflowSweepCallback

    uri = new_store(tmp_path)
    cfg = _compose_with_hydra(
        [
            "optim.lr=0.1",
            f"logger.tracking_uri={uri}",
            f"paths.output_dir={tmp_path / 'job'}",
            "hydra.mode=MULTIRUN",
            "hydra.job.num=0",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ]
    )
    callback = MLflowSweepCallback()
    callback.on_multirun_start(cfg)
    hydra_config = HydraConfig.instance()
    saved = hydra_config.cfg
    try:
        hydra_config.set_config(cfg)

        @sweep_job
        def diverged(_: object) -> float:
            return math.nan

        @sweep_job
        @report_user_errors
        def bad_config(_: object) -> float:
            raise ConfigError("optim.lr=-1: expected a positive learning rate")

        assert diverged(cfg) is None  # None: Optuna's failed trial
        assert bad_config(cfg) is None  # no SystemExit: the sweep goes on
    finally:
        hydra_config.cfg = saved
    callback.on_multirun_end(cfg)
    parent, children = _runs(uri)
    assert len(children) == 2 and all(c.info.status == "FAILED" for c in children)
    errors = sorted(c.data.tags["seglab.error"] for c in children)
    assert errors == [
        "ConfigError: optim.lr=-1: expected a positive learning rate",
        "val/mIoU is nan",
    ]
    assert parent.info.status == "FAILED"  # no job finished: no best child
    assert "seglab.best_run_id" not in parent.data.tags
