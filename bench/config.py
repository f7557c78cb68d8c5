"""train.py's configuration, composed exactly as the entry point does, for the baselines."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

ROOT = Path(__file__).resolve().parents[1]


def compose_train(overrides: Sequence[str] = ()) -> DictConfig:
    """conf/train.yaml with `overrides`, outside a Hydra run (paths.output_dir pinned)."""
    from seglab.resolvers import register_resolvers

    register_resolvers()
    os.environ.setdefault("SEGLAB_ROOT", str(ROOT))
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return compose("train", overrides=[*overrides, "paths.output_dir=/tmp/seglab-bench"])
