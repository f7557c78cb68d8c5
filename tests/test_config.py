"""Every config choice composes, builds and runs a training step; bad configs fail early."""

from __future__ import annotations

import inspect
from pathlib import Path

import hydra.utils
import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf

from seglab.cli.train import build_task, check_config
from seglab.errors import ConfigError
from seglab.optim import build_scheduler
from tests.conftest import CONF_DIR, compose_train

CHOICES = {
    group: sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
    for group in ("model", "loss", "optim", "scheduler")
}


def _container(overrides: list[str], tmp_path: Path) -> dict:
    cfg = compose_train(overrides, output_dir=tmp_path)
    check_config(cfg)
    return OmegaConf.to_container(cfg, resolve=True)


def test_every_group_has_the_required_choices() -> None:
    assert {"unet", "deeplabv3plus", "fpn", "pspnet", "unetplusplus"} <= set(CHOICES["model"])
    assert {
        "ce", "dice", "focal", "jaccard", "lovasz", "tversky", "focal_tversky", "ce_dice"
    } <= set(CHOICES["loss"])  # fmt: skip
    assert {"adamw", "sgd"} <= set(CHOICES["optim"])
    assert {"poly", "cosine", "none", "poly_warmup"} <= set(CHOICES["scheduler"])
    assert "mask_rcnn" in CHOICES["model"]


def test_trainer_config_lists_every_trainer_argument() -> None:
    """`trainer.<arg>=` works without `+` only for keys present in the config."""
    cfg = OmegaConf.load(CONF_DIR / "trainer" / "default.yaml")
    params = set(inspect.signature(pl.Trainer.__init__).parameters) - {"self"}
    assert params - {"logger", "callbacks"} == set(cfg) - {"_target_"}


def _train_step(task: pl.LightningModule, optimizer: torch.optim.Optimizer) -> float:
    torch.manual_seed(0)
    batch = {
        "image": torch.randn(2, 3, 64, 64),
        "mask": torch.randint(0, task.num_classes, (2, 64, 64)),
    }
    batch["mask"][:, :4] = task.ignore_index
    task.train()
    loss = task._logits_and_loss(batch)[1]
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return float(loss.detach())


# mask_rcnn's step (instance targets) is tested in test_instances.py / test_mask_rcnn_train.py.
@pytest.mark.parametrize(
    "group,choice",
    [(g, c) for g, choices in CHOICES.items() for c in choices if c != "mask_rcnn"],
)
def test_choice_composes_and_trains_a_step(group: str, choice: str, tmp_path: Path) -> None:
    container = _container([f"{group}={choice}"], tmp_path)
    task = build_task(container)
    optimizer = hydra.utils.instantiate(container["optim"], params=task.parameters())
    scheduler = build_scheduler(optimizer, {**container["scheduler"], "warmup_steps": 2}, 10)
    loss = _train_step(task, optimizer)
    if scheduler is not None:
        scheduler.step()
    assert torch.isfinite(torch.tensor(loss))
    task.eval()  # batch of 1: BatchNorm after global pooling needs eval mode
    assert task(torch.randn(1, 3, 64, 64)).shape == (1, task.num_classes, 64, 64)


def test_any_smp_encoder_is_accepted(tmp_path: Path) -> None:
    container = _container(["model=fpn", "model.encoder=mobilenet_v2"], tmp_path)
    task = build_task(container).eval()
    assert task(torch.randn(1, 3, 64, 64)).shape[1] == container["data"]["num_classes"]


def test_classes_reach_model_loss_and_metrics_by_interpolation(tmp_path: Path) -> None:
    container = _container(["data.num_classes=7", "data.class_names=[a,b,c,d,e,f,g]"], tmp_path)
    assert container["model"]["num_classes"] == 7
    assert container["loss"]["ignore_index"] == container["data"]["ignore_index"]
    task = build_task(container)
    assert task.val_matrix.num_classes == 7
    assert task.class_names == list("abcdefg")


def test_class_count_mismatch_fails_before_training(tmp_path: Path) -> None:
    cfg = compose_train(["model.num_classes=3"], output_dir=tmp_path)
    with pytest.raises(ConfigError, match="model.num_classes=3 but data.num_classes=6"):
        check_config(cfg)


def test_unknown_encoder_names_the_key(tmp_path: Path) -> None:
    container = _container(["model.encoder=resnet1000"], tmp_path)
    with pytest.raises(Exception, match="model.encoder='resnet1000'"):
        build_task(container)


@pytest.mark.parametrize("name", ["poly", "cosine", "none"])
def test_scheduler_warms_up_then_decays(name: str) -> None:
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=1.0)
    cfg = {"name": name, "warmup_steps": 4, "warmup_start_factor": 0.1, "power": 1.0}
    scheduler = build_scheduler(optimizer, cfg, total_steps=20)
    lrs = []
    for _ in range(20):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == pytest.approx(0.1)
    assert lrs[4] == pytest.approx(1.0)
    if name == "none":
        assert lrs[-1] == pytest.approx(1.0)
    else:
        assert lrs[-1] < 0.2


def test_warmup_longer_than_the_run_is_a_config_error() -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ConfigError, match="scheduler.warmup_steps"):
        build_scheduler(optimizer, {"name": "poly", "warmup_steps": 50}, total_steps=10)


def test_experiment_presets_compose(tmp_path: Path) -> None:
    presets = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
    assert presets, "experiments/ has no preset"
    for name in presets:
        compose_train([f"experiment={name}"], output_dir=tmp_path)


@pytest.mark.parametrize("name", ["fast_dev_run", "overfit"])
def test_debug_presets_compose(name: str, tmp_path: Path) -> None:
    cfg = compose_train([f"debug={name}"], output_dir=tmp_path)
    assert cfg.trainer.fast_dev_run if name == "fast_dev_run" else cfg.trainer.overfit_batches > 0


def test_trainer_arguments_pass_through(tmp_path: Path) -> None:
    cfg = compose_train(
        ["trainer.limit_train_batches=4", "trainer.max_epochs=3", "trainer.accelerator=cpu"],
        output_dir=tmp_path,
    )
    trainer = hydra.utils.instantiate(cfg.trainer, logger=False, enable_progress_bar=False)
    assert trainer.max_epochs == 3 and trainer.limit_train_batches == 4


def test_pretrained_weights_offline_give_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    from seglab.models import build_smp_model

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(
        ConfigError, match="(?s)model.encoder_weights=.imagenet.*model.encoder_weights=null"
    ):
        build_smp_model("unet", "resnet18", encoder_weights="imagenet", num_classes=3)


def test_auto_precision_follows_the_hardware(monkeypatch: pytest.MonkeyPatch) -> None:
    from seglab import resolvers

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert resolvers.auto_precision("auto") == "16-mixed"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert resolvers.auto_precision("gpu") == "bf16-mixed"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(resolvers, "_cpu_has_native_bf16", lambda: False)
    assert resolvers.auto_precision("auto") == "32-true"
    monkeypatch.setattr(resolvers, "_cpu_has_native_bf16", lambda: True)
    assert resolvers.auto_precision("cpu") == "bf16-mixed"


def test_precision_is_resolved_in_the_config_and_overridable(tmp_path: Path) -> None:
    from seglab.resolvers import auto_precision

    assert compose_train([], output_dir=tmp_path).trainer.precision == auto_precision("auto")
    cfg = compose_train(["trainer.precision=32-true"], output_dir=tmp_path)
    assert cfg.trainer.precision == "32-true"


def test_warmup_ratio_is_a_share_of_the_run() -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    cfg = {"name": "poly", "warmup_ratio": 0.2, "warmup_start_factor": 0.5, "power": 1.0}
    scheduler = build_scheduler(optimizer, cfg, total_steps=20)  # 4 warm-up steps
    lrs = []
    for _ in range(6):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == pytest.approx(0.5) and lrs[4] == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="scheduler.warmup_ratio"):
        build_scheduler(optimizer, {"name": "poly", "warmup_ratio": 1.5}, total_steps=20)
