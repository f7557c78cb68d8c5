"""Shared fixtures: composing the real configs and running the real entry points on tiny data."""

from __future__ import annotations

import atexit
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from tests.stub_net import STUB_NET

pytest_plugins = ["tests.scheduling"]  # the order work is handed to xdist workers

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"

# A synthetic dataset small enough for seconds-long runs on 2 CPU cores.
TINY_DATA = [
    "data.prepare.num_train=24",
    "data.prepare.num_val=8",
    "data.image_size=64",
    "data.batch_size=8",
    "data.num_workers=0",
]


def tiny_run(
    root: Path | str | None = None,
    *,
    epochs: int = 1,
    train_batches: int | None = None,
    val_batches: int | None = None,
    precision: str | None = "32-true",
    stub: bool = True,
    plots: bool = False,
    overlays: int | None = None,
    sanity_check: bool = False,
    log_model: bool = False,
) -> list[str]:
    """The overrides of every tiny training run in the suite: the tiny synthetic set (at `root`),
    `epochs` epochs (of `train_batches`/`val_batches` batches when given), no progress bar or
    model summary, and a precision forced, so a run is the same on every CPU (None: the test
    gives it, or the config's hardware-dependent default stays, as for a user's command).

    `stub`: the two-layer network of tests/stub_net.py, for tests about the pipeline; False keeps
    the config's real network, for tests about the network. Plots cost seconds and are logged
    only when asked for: `plots` as the config draws them, `overlays=n` with n overlay images.
    `log_model`: log the best checkpoint as the run's MLflow model, as every user's run does
    (off by default: the first model a process logs costs seconds, MLflow mapping the installed
    packages for the model's requirements; tests/test_model_logging.py covers it).
    """
    overrides = [
        *TINY_DATA,
        *([f"data.root={root}"] if root is not None else []),
        f"trainer.max_epochs={epochs}",
        *([f"trainer.precision={precision}"] if precision is not None else []),
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
    ]
    if train_batches is not None:
        overrides.append(f"trainer.limit_train_batches={train_batches}")
    if val_batches is not None:
        overrides.append(f"trainer.limit_val_batches={val_batches}")
    if not sanity_check:
        overrides.append("trainer.num_sanity_val_steps=0")
    if not log_model:
        overrides.append("logger.log_model=false")
    if stub:
        overrides.extend(STUB_NET)
    if overlays is not None:
        overrides.append(f"callbacks.mlflow_artifacts.num_overlay_images={overlays}")
    elif not plots:
        overrides.append("callbacks.mlflow_artifacts=null")
    return overrides


# --- Parallel workers (pytest-xdist; tests/scheduling.py shares the work out) ----------------
# Most tests are torch on tiny tensors or entry-point subprocesses that import for seconds:
# one process keeps less than one core busy, so the suite runs in one worker per core.
# MAX_WORKERS bounds the memory: a worker holding the heaviest modules peaks near 3 GB.
MAX_WORKERS = 8
WORKER_MEMORY = 3 * 2**30


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: a worker per core, as many as the memory holds."""
    import psutil

    by_memory = psutil.virtual_memory().available // WORKER_MEMORY
    return max(1, min(os.cpu_count() or 1, by_memory, MAX_WORKERS))


def pytest_configure(config: pytest.Config) -> None:
    """In a worker: the cores shared out, the same count in-process and in the entry points it
    starts (a thread count changes float reduction order, and several tests compare a score
    computed in a subprocess with one computed here at 1e-6)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers > 1:
        import torch

        threads = max(1, (os.cpu_count() or 1) // workers)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)


def shared_by_workers(
    tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], Any]
) -> Any:
    """`make(folder)` once per test session, even when several xdist workers ask for it: the
    first builds it under a lock, the others wait and read the pickled result."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return make(tmp_path_factory.mktemp(name))
    shared = tmp_path_factory.getbasetemp().parent  # the session's folder, above each worker's
    done = shared / f"{name}.pickle"
    with FileLock(str(shared / f"{name}.lock")):
        if done.is_file():
            return pickle.loads(done.read_bytes())
        folder = shared / name
        folder.mkdir()
        value = make(folder)
        done.write_bytes(pickle.dumps(value))
        return value


def compose_entry(
    config: str, overrides: Sequence[str] = (), output_dir: Path | None = None
) -> DictConfig:
    """conf/<config>.yaml composed as `python <config>.py <overrides>` would, outside Hydra."""
    extra = [f"paths.output_dir={output_dir}"] if output_dir else []
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose(config, overrides=[*overrides, *extra])


def compose_train(overrides: Sequence[str] = (), output_dir: Path | None = None) -> DictConfig:
    """conf/train.yaml composed as `python train.py <overrides>` would, outside a Hydra run."""
    return compose_entry("train", overrides, output_dir)


@pytest.fixture(scope="session")
def tiny_synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic dataset at test size, generated once per session."""
    from seglab.data.synthetic import ensure_synthetic_voc

    def make(root: Path) -> Path:
        ensure_synthetic_voc(root, num_train=24, num_val=8, image_size=64, seed=0)
        return root

    return shared_by_workers(tmp_path_factory, "synthetic", make)


_STORE_TEMPLATE: list[Path] = []


def new_store(folder: Path) -> str:
    """The URI of a new, empty sqlite MLflow store in `folder`.

    A copy of one made once per process: MLflow creates a store by running its ~50 schema
    migrations, seconds each time, and most end-to-end tests start from an empty store.
    """
    if not _STORE_TEMPLATE:
        from mlflow.tracking import MlflowClient

        made = Path(tempfile.mkdtemp(prefix="seglab-store-"))
        atexit.register(shutil.rmtree, made, ignore_errors=True)
        MlflowClient(f"sqlite:///{made / 'mlflow.db'}").search_experiments()
        _STORE_TEMPLATE.append(made / "mlflow.db")
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_STORE_TEMPLATE[0], folder / "mlflow.db")
    return f"sqlite:///{folder / 'mlflow.db'}"


@pytest.fixture()
def tracking_uri(tmp_path: Path) -> str:
    return new_store(tmp_path)


def run_entry_point(
    script: str,
    args: Sequence[str],
    cwd: Path,
    tracking_uri: str | None = None,
    timeout: float = 600,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `python <script> <args>` from the project root as a user would; output captured.

    `cwd` is where outputs go (hydra.run.dir is pinned there), so tests never write to the
    project's runs/ or mlruns/.
    """
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("MLFLOW_TRACKING_URI", None)
    if tracking_uri:
        full_env["MLFLOW_TRACKING_URI"] = tracking_uri
    cmd = [sys.executable, str(ROOT / script), *args, f"hydra.run.dir={cwd / 'run'}"]
    return subprocess.run(
        cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory, tiny_synthetic_root: Path) -> dict:
    """One short `train.py` run (1 epoch, 64 px synthetic) shared by eval/predict/export tests.

    Returns the checkpoint, its output dir, the MLflow store and the val/mIoU it logged last;
    the run logs its MLflow model (`runs:/<run_id>/model`), as a user's run does.
    """
    return shared_by_workers(
        tmp_path_factory, "tiny_ckpt", lambda tmp: _train_tiny_checkpoint(tmp, tiny_synthetic_root)
    )


def _train_tiny_checkpoint(tmp: Path, tiny_synthetic_root: Path) -> dict:
    import json

    from mlflow.tracking import MlflowClient

    uri = new_store(tmp)
    # The real U-Net (its checkpoint feeds the eval, predict, export and checkpoint tests), at
    # 32-true on every CPU (test_architectures_e2e covers bf16-mixed).
    run = tiny_run(tiny_synthetic_root, stub=False, overlays=0, sanity_check=True, log_model=True)
    args = [*run, "trainer.accelerator=cpu", "trainer.devices=1", "optim.lr=0.001"]
    proc = run_entry_point("train.py", args, tmp, tracking_uri=uri)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    out = tmp / "run"
    run_id = json.loads((out / "mlflow_run.json").read_text())["run_id"]
    history = MlflowClient(uri).get_metric_history(run_id, "val/mIoU")
    return {
        "ckpt": out / "checkpoints" / "last.ckpt",
        "out": out,
        "tracking_uri": uri,
        "run_id": run_id,
        "val_miou": sorted(history, key=lambda m: m.step)[-1].value,
        "data_root": tiny_synthetic_root,
    }


# Sweeps and DDP: the fastest jobs that still train, validate, checkpoint and log: 2 epochs of a
# batch on the stub network, fp32 (bf16 autocast on CPU spends seconds compiling kernels).
FAST_JOB = tiny_run(epochs=2, train_batches=1, val_batches=1)


def run_multirun(
    args: Sequence[str],
    sweep_dir: Path,
    tracking_uri: str,
    timeout: float = 600,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`python train.py -m <args>` with its sweep dir and MLflow store pinned under a tmp dir."""
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "MLFLOW_TRACKING_URI": tracking_uri,
        **(env or {}),
    }
    cmd = [sys.executable, str(ROOT / "train.py"), "-m", *args, f"hydra.sweep.dir={sweep_dir}"]
    return subprocess.run(
        cmd, cwd=sweep_dir.parent, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="session")
def sweep_store(tmp_path_factory: pytest.TempPathFactory, tiny_synthetic_root: Path) -> dict:
    """One finished 2x2 grid sweep (model x loss) in its own MLflow store, shared by the sweep,
    compare and MLflow UI tests."""
    return shared_by_workers(
        tmp_path_factory, "grid", lambda tmp: _run_grid_sweep(tmp, tiny_synthetic_root)
    )


def _run_grid_sweep(tmp: Path, tiny_synthetic_root: Path) -> dict:
    uri = new_store(tmp)
    args = ["model=unet,fpn", "loss=ce,dice", *FAST_JOB, f"data.root={tiny_synthetic_root}"]
    proc = run_multirun(args, tmp / "sweep", uri)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return {"uri": uri, "sweep_dir": tmp / "sweep", "proc": proc, "experiment": "synthetic"}
