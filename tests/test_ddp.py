"""DDP on CPU (gloo, 2 processes): one MLflow run, one output dir, metrics equal to 1 process.

Also as two nodes (two torchrun agents on loopback), and inside a multirun, where Lightning's default start would re-run the sweep on rank 1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import hydra.utils
import pytest
import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf
from pytorch_lightning.strategies.launchers import _MultiProcessingLauncher

from seglab.distributed import check_no_relaunch, multirun_safe_trainer
from seglab.errors import ConfigError
from seglab.tasks.checkpoint import load_task
from tests.conftest import (
    FAST_JOB,
    ROOT,
    compose_train,
    new_store,
    run_entry_point,
    run_multirun,
    tiny_run,
)
from tests.servers import free_port

# One epoch, whole val split, last.ckpt = the weights that produced the logged val metrics.
# One image per val batch and one thread per process (SAME_NUMERICS): every image then goes
# through the same kernels as in the 1-process check, where a different batch shape or thread
# count could flip a near-tie pixel's argmax and move an IoU by ~1e-6.
VAL_ONE_BY_ONE = "data.val_batch_size=1"
SAME_NUMERICS = {"OMP_NUM_THREADS": "1"}
# One epoch of a batch, the whole val split; the precision is each test's.
DDP_JOB = [*tiny_run(train_batches=1, precision=None), "trainer=ddp_cpu", VAL_ONE_BY_ONE]
CONFUSION_METRICS = ("val/mIoU", "val/aAcc", "val/mAcc", "val/mF1", "val/FWIoU")


def _one_process_val(
    ckpt: Path, data_root: Path, tmp: Path, data_args: tuple[str, ...], precision: str
) -> dict[str, float]:
    """The checkpoint validated by a plain 1-process trainer over the same val split."""
    overrides = [*FAST_JOB, VAL_ONE_BY_ONE, f"data.root={data_root}", *data_args]
    cfg = compose_train(overrides, output_dir=tmp)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        precision=precision,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(int(SAME_NUMERICS["OMP_NUM_THREADS"]))
    try:
        (metrics,) = trainer.validate(
            load_task(ckpt), datamodule=hydra.utils.instantiate(cfg.data), verbose=False
        )
    finally:
        torch.set_num_threads(threads)
    return metrics


def _assert_same_val_metrics(
    run,
    ckpt: Path,
    data_root: Path,
    tmp: Path,
    data_args: tuple[str, ...] = (),
    precision: str = "32-true",
) -> None:
    single = _one_process_val(ckpt, data_root, tmp, data_args, precision)
    logged = run.data.metrics
    keys = [*CONFUSION_METRICS, *(k for k in single if k.startswith("val/IoU/"))]
    assert len(keys) > len(CONFUSION_METRICS)
    for key in keys:
        assert logged[key] == pytest.approx(single[key], abs=1e-6), key


def _output_dirs(root: Path) -> list[Path]:
    return sorted(
        p.parent for p in root.rglob("config.yaml") if (p.parent / "checkpoints").is_dir()
    )


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])  # bf16 forced on any CPU
def test_ddp_cpu_run_is_one_run_with_synced_metrics(tmp_path: Path, precision: str) -> None:
    # 7 val images on 2 ranks: a padding sampler would count one of them twice.
    data_root = tmp_path / "data"
    data_args = ("data.prepare.num_train=16", "data.prepare.num_val=7")
    uri = new_store(tmp_path)
    proc = run_entry_point(
        "train.py",
        [*DDP_JOB, f"trainer.precision={precision}", f"data.root={data_root}", *data_args],
        tmp_path,
        tracking_uri=uri,
        env=SAME_NUMERICS,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "MEMBER: 2/2" in proc.stdout + proc.stderr  # two ranks really ran
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("synthetic").experiment_id])
    assert run.info.status == "FINISHED"
    assert _output_dirs(tmp_path) == [tmp_path / "run"]
    out = tmp_path / "run"
    assert json.loads((out / "mlflow_run.json").read_text())["run_id"] == run.info.run_id
    last = out / "checkpoints" / "last.ckpt"
    _assert_same_val_metrics(run, last, data_root, tmp_path, data_args, precision)


@pytest.mark.slow
def test_ddp_cpu_inside_a_multirun_does_not_rerun_the_sweep(
    tmp_path: Path, tiny_synthetic_root: Path
) -> None:
    """2 jobs x 2 ranks: still one parent, two children, two output dirs, synced metrics."""
    uri = new_store(tmp_path)
    args = [
        "optim.lr=0.001,0.002",
        *DDP_JOB,
        "trainer.precision=32-true",
        f"data.root={tiny_synthetic_root}",
    ]
    proc = run_multirun(args, tmp_path / "sweep", uri, env=SAME_NUMERICS)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    log = proc.stdout + proc.stderr
    assert log.count("Launching 2 jobs") == 1  # a relaunched rank would start the sweep again
    assert log.count("MEMBER: 2/2") == 2  # each job really ran on two ranks
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("synthetic").experiment_id])
    parents = [r for r in runs if r.data.tags.get("seglab.sweep") == "true"]
    children = [r for r in runs if r not in parents]
    assert len(parents) == 1 and len(children) == 2
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    assert sorted(c.data.params["optim.lr"] for c in children) == ["0.001", "0.002"]
    assert {c.data.params["trainer.strategy.start_method"] for c in children} == {"spawn"}
    assert all(c.info.status == "FINISHED" for c in children)
    sweep = tmp_path / "sweep"
    assert _output_dirs(tmp_path) == [sweep / "0", sweep / "1"]
    job0 = next(c for c in children if c.data.tags["seglab.job_num"] == "0")
    ckpt = sweep / "0" / "checkpoints" / "last.ckpt"
    _assert_same_val_metrics(job0, ckpt, tiny_synthetic_root, tmp_path)
    # train() returned the checkpoint's best score from the spawned rank 0 to the sweep.
    history = client.get_metric_history(job0.info.run_id, "val/mIoU")
    assert job0.data.metrics["best/val/mIoU"] == pytest.approx(max(m.value for m in history))


class _InMultirun:
    """HydraConfig set as in a multirun job, for the unit tests below."""

    def __enter__(self) -> None:
        from hydra import compose, initialize_config_dir

        from tests.conftest import CONF_DIR

        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            cfg = compose("train", ["hydra.mode=MULTIRUN"], return_hydra_config=True)
        self.instance = HydraConfig.instance()
        self.saved = self.instance.cfg
        self.instance.set_config(cfg)

    def __exit__(self, *exc: object) -> None:
        self.instance.cfg = self.saved


def test_multirun_ddp_strategies_start_by_spawning(tmp_path: Path) -> None:
    cfg = compose_train(["trainer=ddp_cpu"], output_dir=tmp_path)
    assert multirun_safe_trainer(cfg.trainer).strategy.start_method == "popen"  # single run
    with _InMultirun():
        safe = multirun_safe_trainer(cfg.trainer)
        assert safe.strategy.start_method == "spawn"
        assert safe.strategy.process_group_backend == "gloo"
        trainer = hydra.utils.instantiate(safe, logger=False, callbacks=[])
        assert isinstance(trainer.strategy.launcher, _MultiProcessingLauncher)
        check_no_relaunch(trainer)
        as_string = OmegaConf.merge(cfg.trainer, {"strategy": "ddp"})
        assert multirun_safe_trainer(as_string).strategy == "ddp_spawn"
        # Lightning's own choice of DDP (several devices, strategy auto) is refused, not rerun.
        auto = hydra.utils.instantiate(
            OmegaConf.merge(cfg.trainer, {"strategy": "auto"}), logger=False, callbacks=[]
        )
        with pytest.raises(ConfigError, match="whole sweep again"):
            check_no_relaunch(auto)


@pytest.mark.slow
def test_two_nodes_over_torchrun_are_one_run(tmp_path: Path, tiny_synthetic_root: Path) -> None:
    """The README's two-node torchrun recipe on loopback: two torchrun agents, one process each
    (`--nnodes=2 --nproc_per_node=1`), gloo; one MLflow run, one output dir, synced metrics."""
    uri = new_store(tmp_path)
    out = tmp_path / "run"
    port = free_port()
    args = [
        *DDP_JOB,
        "trainer.precision=32-true",
        "trainer.devices=1",
        "trainer.num_nodes=2",
        f"data.root={tiny_synthetic_root}",
        f"hydra.run.dir={out}",  # the same dir on every node (shared storage on a cluster)
    ]
    env = {**os.environ, **SAME_NUMERICS, "MLFLOW_TRACKING_URI": uri, "PYTHONUNBUFFERED": "1"}
    torchrun = str(Path(sys.executable).parent / "torchrun")
    nodes = []
    for rank in (0, 1):
        cmd = [
            torchrun,
            "--nnodes=2",
            "--nproc_per_node=1",
            f"--node_rank={rank}",
            "--master_addr=127.0.0.1",
            f"--master_port={port}",
            str(ROOT / "train.py"),
            *args,
        ]
        log = (tmp_path / f"node{rank}.log").open("w")
        nodes.append(
            subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
        )
    try:
        codes = [node.wait(timeout=600) for node in nodes]
    finally:
        for node in nodes:
            if node.poll() is None:
                node.kill()
    logs = [(tmp_path / f"node{rank}.log").read_text() for rank in (0, 1)]
    assert codes == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in logs[1]  # the second node was rank 1 of 2
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("synthetic").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["trainer.num_nodes"] == "2"
    assert _output_dirs(tmp_path) == [out]
    assert json.loads((out / "mlflow_run.json").read_text())["run_id"] == run.info.run_id
    _assert_same_val_metrics(run, out / "checkpoints" / "last.ckpt", tiny_synthetic_root, tmp_path)
