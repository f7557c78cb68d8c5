"""Step 1 of a run: the config it will really train with, checked, and its credential-free copy.

Everything here happens before any model, data loader or MLflow run exists, so a mistake in the
config stops the run with a message and leaves nothing behind.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from seglab.data.stats import resolve_auto_class_weights
from seglab.distributed import multirun_safe_trainer
from seglab.errors import ConfigError
from seglab.run.context import output_dir
from seglab.run.requeue import requeued_run_dir, restart_count
from seglab.run.resume import Resumed, load_resume
from seglab.tracking.secrets import mask_paths, redact_config

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """A run's settled config: what is logged, what checkpoints keep, where output goes."""

    cfg: DictConfig  # the config to train with (a resumed run's own, when resume= is given)
    container: dict[str, Any]  # cfg resolved to plain dicts: logged to MLflow and config.yaml
    redacted: dict[str, Any]  # container with credentials masked: the checkpoints' hparams
    out_dir: Path
    resumed: Resumed | None  # the stopped run being continued


def check_config(cfg: DictConfig) -> None:
    """Inconsistencies that would otherwise surface deep inside training."""
    if OmegaConf.is_missing(cfg.model, "arch"):
        raise ConfigError(
            "model.arch is not set: conf/model/_smp.yaml is the shared base of the smp model "
            "configs, not a model; choose one: model=unet, model=fpn, ... (train.py --help "
            "lists them)"
        )
    if OmegaConf.is_missing(cfg.data, "name"):
        raise ConfigError(
            "data.name is not set: conf/data/_base.yaml is the shared base of the dataset "
            "configs, not a dataset; choose one: data=voc, data=cityscapes, ... (train.py --help "
            "lists them)"
        )
    if cfg.model.get("num_classes") is not None and cfg.model.num_classes != cfg.data.num_classes:
        raise ConfigError(
            f"model.num_classes={cfg.model.num_classes} but data.num_classes={cfg.data.num_classes} "
            f"({cfg.data.name}); leave model.num_classes at its default ${{data.num_classes}}"
        )
    weights = cfg.loss.get("class_weights")
    if weights is not None and len(weights) != cfg.data.num_classes:
        raise ConfigError(
            f"loss.class_weights has {len(weights)} values; data.num_classes={cfg.data.num_classes}"
        )


def prepare(cfg: DictConfig) -> Prepared:
    """Resolve `resume=` and `loss.class_weights=auto`, check the config, seed, and redact."""
    requeued = requeued_run_dir(cfg)
    if requeued is not None:  # SLURM restarted this job: continue its stopped attempt's run
        log.info("requeued SLURM job (restart %d): continuing %s", restart_count(), requeued)
        resumed = load_resume(str(requeued), overrides=[])
    else:
        resumed = load_resume(cfg.resume) if cfg.get("resume") else None
    if resumed is not None:
        cfg = resumed.cfg
    resolve_auto_class_weights(cfg)  # loss.class_weights=auto → median-frequency weights
    check_config(cfg)
    # Inside a multirun DDP ranks are spawned, not re-run from argv (which would rerun the sweep);
    # done before the config is logged, so the run's params say how it really started.
    cfg.trainer = multirun_safe_trainer(cfg.trainer)
    pl.seed_everything(cfg.seed, workers=True)
    container: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    hidden = resumed.masked if resumed is not None else []
    redacted = mask_paths(redact_config(container), hidden)  # no credentials in checkpoints
    return Prepared(cfg, container, redacted, output_dir(cfg), resumed)
