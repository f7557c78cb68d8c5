"""DDP that is safe inside Hydra multiruns.

Lightning's default DDP start (`popen`) re-runs the script with the original argv for ranks
> 0; inside a multirun each of those ranks would start the whole sweep again. Inside a
multirun seglab therefore starts ranks by spawning (the ranks receive the job's trainer and
model, not the command line), unless an external launcher (srun, torchrun, LSF) has
already started one process per rank, in which case nothing is re-run either.
"""

from __future__ import annotations

import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning_fabric.plugins.environments import (
    LSFEnvironment,
    SLURMEnvironment,
    TorchElasticEnvironment,
)
from omegaconf import DictConfig, OmegaConf

from seglab.compat import relaunches_script
from seglab.errors import ConfigError

# Kubeflow cannot be detected from the environment (Lightning needs it passed explicitly).
EXTERNAL_LAUNCHERS = (SLURMEnvironment, TorchElasticEnvironment, LSFEnvironment)
DDP_TARGETS = (
    "pytorch_lightning.strategies.DDPStrategy",
    "lightning.pytorch.strategies.DDPStrategy",
)


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def launched_externally() -> bool:
    """True when a cluster launcher started this process as one rank among several."""
    return any(env.detect() for env in EXTERNAL_LAUNCHERS)


def _spawn_name(strategy: str) -> str | None:
    """`ddp` → `ddp_spawn`, `ddp_find_unused_parameters_true` → its spawn twin; else None."""
    if strategy == "ddp":
        return "ddp_spawn"
    if strategy.startswith("ddp_find_unused_parameters_"):
        return strategy.replace("ddp_", "ddp_spawn_", 1)
    return None


def _is_ddp(strategy: object) -> bool:
    if isinstance(strategy, str):
        return _spawn_name(strategy) is not None
    return isinstance(strategy, DictConfig) and strategy.get("_target_") in DDP_TARGETS


def multirun_safe_trainer(trainer_cfg: DictConfig) -> DictConfig:
    """The trainer config with a spawn start for DDP when inside a multirun (else unchanged)."""
    if not in_multirun():
        return trainer_cfg
    strategy = trainer_cfg.get("strategy")
    if not _is_ddp(strategy) or launched_externally():
        return trainer_cfg
    cfg = OmegaConf.create(OmegaConf.to_container(trainer_cfg, resolve=True))  # a copy
    if isinstance(strategy, str):
        cfg.strategy = _spawn_name(strategy)
    elif strategy.get("start_method", "popen") == "popen":
        cfg.strategy.start_method = "spawn"
    return cfg


def check_no_relaunch(trainer: pl.Trainer) -> None:
    """Refuse a multirun job whose strategy would re-run the script (and so the sweep) per rank.

    Catches what `multirun_safe_trainer` cannot see in the config, e.g. `strategy=auto` that
    Lightning turns into DDP because several devices were asked for.
    """
    strategy = trainer.strategy
    if not in_multirun() or trainer.world_size <= 1:
        return
    launcher = getattr(strategy, "launcher", None)
    env = getattr(strategy, "cluster_environment", None)
    if relaunches_script(launcher) and not (env is not None and env.creates_processes_externally):
        raise ConfigError(
            f"trainer.strategy={type(strategy).__name__} starts ranks by re-running the command, "
            "which inside a multirun would start the whole sweep again on every rank; use "
            "trainer=ddp or trainer=ddp_cpu (spawned inside multiruns) or "
            "trainer.strategy=ddp_spawn"
        )
