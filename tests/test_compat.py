"""Each private-API adapter in seglab.compat, run against the installed torch, Lightning and
MLflow: an upgrade that removes or changes what an adapter relies on fails here, naming it."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from seglab import compat


def test_torch_cpu_bf16_probes_exist() -> None:
    missing = compat.missing_cpu_bf16_probes()
    assert not missing, (
        f"torch {torch.__version__}: torch.cpu no longer has {missing}; auto precision would "
        "never pick bf16-mixed on CPUs that have it (update seglab.compat.cpu_has_native_bf16)"
    )
    assert isinstance(compat.cpu_has_native_bf16(), bool)


class _Tiny(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        (x,) = batch
        return self.layer(x).pow(2).mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(torch.randn(4, 2)), batch_size=2)


class _Probe(pl.Callback):
    """Reads the loop internals where seglab's guards read them."""

    def __init__(self, ckpt: Path) -> None:
        self.ckpt = ckpt
        self.batch_args: list[int] = []
        self.batch_read: list[int] = []
        self.saved: dict[str, Any] | None = None

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        self.batch_args.append(int(args[-1]))

    def on_before_backward(self, trainer: pl.Trainer, *args: Any) -> None:
        self.batch_read.append(compat.batch_index(trainer))  # as FiniteLossGuard does

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch == 1:  # as RunGuard does: a save between two epochs
            trainer.save_checkpoint(self.ckpt)

    def on_save_checkpoint(self, trainer: pl.Trainer, *args: Any) -> None:
        self.saved = copy.deepcopy(args[-1])


def test_lightning_loop_progress(tmp_path: Path) -> None:
    probe = _Probe(tmp_path / "boundary.ckpt")
    trainer = pl.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[probe],
    )
    trainer.fit(_Tiny())
    assert probe.batch_read == probe.batch_args == [0, 1, 0, 1], (
        f"pytorch-lightning {pl.__version__}: Trainer.fit_loop.epoch_loop.batch_idx no longer "
        "is the batch being trained (update seglab.compat.batch_index)"
    )
    assert probe.saved is not None
    progress = compat.epoch_progress(probe.saved)
    assert progress is not None, (
        f"pytorch-lightning {pl.__version__}: a checkpoint has no "
        "loops.fit_loop.epoch_progress any more (update seglab.compat.epoch_progress)"
    )
    # Saved in on_train_epoch_start of the second epoch: ready already counts it, started not.
    assert (progress["total"]["ready"], progress["total"]["started"]) == (2, 1), (
        f"pytorch-lightning {pl.__version__}: epoch counters at on_train_epoch_start changed "
        f"({progress['total']}); seglab.compat.mark_epoch_boundary relies on them"
    )
    compat.mark_epoch_boundary(probe.saved)
    for part in ("total", "current"):
        tracker = progress[part]
        assert tracker["ready"] == tracker["started"] == tracker["completed"] == 1


def test_epoch_progress_names_a_changed_layout() -> None:
    broken = {"loops": {"fit_loop": {"epoch_progress": {"total": {"ready": 1}}}}}
    with pytest.raises(compat.PrivateAPIError, match="pytorch-lightning .*epoch_progress"):
        compat.epoch_progress(broken)
    assert compat.epoch_progress({}) is None


def test_lightning_subprocess_script_launcher() -> None:
    launcher_class = compat.subprocess_script_launcher()
    assert launcher_class.__name__ == "_SubprocessScriptLauncher"
    ddp = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False)
    spawn = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp_spawn", logger=False)
    assert compat.relaunches_script(ddp.strategy.launcher), (
        f"pytorch-lightning {pl.__version__}: strategy=ddp no longer uses "
        "_SubprocessScriptLauncher (update seglab.compat.relaunches_script)"
    )
    assert not compat.relaunches_script(spawn.strategy.launcher)


def test_optuna_trial_by_number(tmp_path: Path) -> None:
    """A job reaches the trial its sweeper asked for, by number, and reports to it."""
    import optuna

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    study.ask()
    asked = study.ask()
    trial = compat.optuna_trial(optuna.load_study(study_name="s", storage=storage), asked.number)
    assert trial.number == asked.number
    trial.report(0.5, step=0)
    assert study.get_trials()[asked.number].intermediate_values == {0: 0.5}


def test_mlflow_requirement_map_builder(monkeypatch: pytest.MonkeyPatch) -> None:
    """The builder fills the very map MLflow's save_model reads (else warming it on a background
    thread saves nothing and the end of every run waits seconds again)."""
    from mlflow.utils import requirements_utils

    monkeypatch.setattr(requirements_utils, "_MODULES_TO_PACKAGES", None)
    monkeypatch.setattr(requirements_utils, "_PACKAGES_TO_MODULES", None)
    compat.requirement_map_builder()()
    assert "torch" in requirements_utils._MODULES_TO_PACKAGES["torch"]
    module = requirements_utils._PACKAGES_TO_MODULES["torch"]  # torch, torchgen or functorch
    assert "torch" in requirements_utils._MODULES_TO_PACKAGES[module]
    assert requirements_utils._check_requirement_satisfied("torch") is None


def test_lightning_logger_cadence() -> None:
    """Exercised in a run by tests/test_step_metrics.py (the MLflow curve of train/loss_step);
    here: a Trainer still answers it, and one without the property is named."""
    trainer = pl.Trainer(accelerator="cpu", logger=False, log_every_n_steps=3)
    assert compat.loggers_write_this_step(trainer) is True  # outside a loop: Lightning says log
    with pytest.raises(compat.PrivateAPIError, match="_logger_connector.should_update_logs"):
        compat.loggers_write_this_step(object())
