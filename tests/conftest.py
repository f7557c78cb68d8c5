"""Shared fixtures: composing the real configs and running the real entry points on tiny data."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

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


def compose_train(overrides: Sequence[str] = (), output_dir: Path | None = None) -> DictConfig:
    """conf/train.yaml composed as `python train.py <overrides>` would, outside a Hydra run."""
    extra = [f"paths.output_dir={output_dir}"] if output_dir else []
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=[*overrides, *extra])


@pytest.fixture(scope="session")
def tiny_synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic dataset at test size, generated once per session."""
    from seglab.data.synthetic import ensure_synthetic_voc

    root = tmp_path_factory.mktemp("synthetic")
    ensure_synthetic_voc(root, num_train=24, num_val=8, image_size=64, seed=0)
    return root


@pytest.fixture()
def tracking_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


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
