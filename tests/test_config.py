"""Every config choice composes, builds and runs a training step; bad configs fail early."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import hydra.utils
import pytest
import pytorch_lightning as pl
import segmentation_models_pytorch as smp
import torch
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from seglab.cli.summary import print_run_summary
from seglab.data.stats import dataset_stats, median_frequency_weights, resolve_auto_class_weights
from seglab.errors import ConfigError
from seglab.models import build_model, build_smp_model
from seglab.optim import build_scheduler
from seglab.run.build import build_task
from seglab.run.prepare import check_config
from seglab.tracking.naming import model_label, run_name
from tests.conftest import CONF_DIR, ROOT, TINY_DATA, compose_train

CHOICES = {
    group: sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml") if not p.stem.startswith("_"))
    for group in ("model", "loss", "optim", "scheduler")
}  # `_`-named files are shared bases (model/_smp.yaml), not choices
# The smallest input an architecture takes (conf/model/pan.yaml says why); the others run at 64 px.
MIN_SIZE = {"pan": 128}


def _container(overrides: list[str], tmp_path: Path) -> dict:
    cfg = compose_train(overrides, output_dir=tmp_path)
    check_config(cfg)
    return OmegaConf.to_container(cfg, resolve=True)


def test_every_group_has_the_required_choices() -> None:
    assert {
        "unet", "unetplusplus", "fpn", "pspnet", "deeplabv3", "deeplabv3plus", "linknet", "manet",
        "pan", "upernet", "segformer", "dpt",
    } <= set(CHOICES["model"])  # fmt: skip
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


def test_the_progress_bar_redraws_ten_times_a_second(tmp_path: Path) -> None:
    """The default bar stays on but redraws at tqdm's rate, not Lightning's 100/s (a thread
    redrawing after every GPU-length step takes its CPU from the training threads)."""
    from seglab.run.build import build_trainer

    trainer = build_trainer(compose_train([], tmp_path), logger=None)
    (bar,) = [c for c in trainer.callbacks if isinstance(c, pl.callbacks.RichProgressBar)]
    assert bar.refresh_rate == 10 and bar.is_enabled


def _train_step(
    task: pl.LightningModule, optimizer: torch.optim.Optimizer, size: int = 64
) -> float:
    torch.manual_seed(0)
    batch = {
        "image": torch.randn(2, 3, size, size),
        "mask": torch.randint(0, task.num_classes, (2, size, size)),
    }
    batch["mask"][:, :4] = task.ignore_index
    task.train()
    loss = task._logits_and_loss(batch)[1]
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return float(loss.detach())


# Every smp architecture's config (conf/model/<arch>.yaml) composes through train.yaml, builds
# and trains a step (forward, backward, optimiser) at 64 px, batch 2, with its default encoder.
# mask_rcnn's step (instance targets) is tested in test_instances.py / test_mask_rcnn_train.py.
@pytest.mark.parametrize(
    "group,choice",
    [(g, c) for g, choices in CHOICES.items() for c in choices if c != "mask_rcnn"],
)
def test_choice_composes_and_trains_a_step(group: str, choice: str, tmp_path: Path) -> None:
    container = _container([f"{group}={choice}"], tmp_path)
    if group == "model":  # the config's name is the architecture it builds
        model = container["model"]
        # smp: the arch; torchvision (model/_torchvision.yaml): its builder, <arch>_<backbone>
        built = model["arch"] if "encoder" in model else f"{model['arch']}_{model['backbone']}"
        assert model["name"] == built and model["arch"] == choice.removesuffix("_tv")
    task = build_task(container)
    optimizer = hydra.utils.instantiate(container["optim"], params=task.parameters())
    scheduler = build_scheduler(optimizer, {**container["scheduler"], "warmup_steps": 2}, 10)
    size = MIN_SIZE.get(choice, 64) if group == "model" else 64
    loss = _train_step(task, optimizer, size)
    if scheduler is not None:
        scheduler.step()
    assert torch.isfinite(torch.tensor(loss))
    task.eval()  # batch of 1: BatchNorm after global pooling needs eval mode
    assert task(torch.randn(1, 3, size, size)).shape == (1, task.num_classes, size, size)


def test_any_smp_encoder_is_accepted(tmp_path: Path) -> None:
    container = _container(["model=fpn", "model.encoder=mobilenet_v2"], tmp_path)
    task = build_task(container).eval()
    assert task(torch.randn(1, 3, 64, 64)).shape[1] == container["data"]["num_classes"]


def test_timm_universal_encoder_builds_offline(tmp_path: Path) -> None:
    """`tu-<any timm model>` is an smp encoder, though smp's get_encoder_names() omits them."""
    container = _container(["model.encoder=tu-resnet10t"], tmp_path)
    model = build_model(container["model"])
    image = torch.randn(2, 3, 64, 64)
    logits = model(image)
    logits.mean().backward()
    assert logits.shape == (2, container["data"]["num_classes"], 64, 64)


@pytest.mark.parametrize(
    "encoder,where",
    [("resnet1000", "get_encoder_names()"), ("tu-resnet1000", "timm.list_models()")],
)
def test_unknown_encoder_says_where_the_names_are(encoder: str, where: str) -> None:
    with pytest.raises(ConfigError, match=rf"(?s)model.encoder='{encoder}'.*{re.escape(where)}"):
        build_smp_model("unet", encoder, num_classes=3)


def test_model_name_follows_the_arch_built(tmp_path: Path) -> None:
    """`model=unet model.arch=linknet` trains a LinkNet: run name, params and summary say so."""
    cfg = compose_train(["model=unet", "model.arch=linknet"], output_dir=tmp_path)
    container = OmegaConf.to_container(cfg, resolve=True)
    assert container["model"]["name"] == "linknet"  # what MLflow params and checkpoints hold
    name = run_name(cfg, {"model": "unet", "data": "synthetic", "loss": "ce"})
    assert name.startswith("linknet-resnet18_synthetic_ce-")
    assert isinstance(build_model(container["model"]), smp.Linknet)
    console = Console(record=True, width=200)
    print_run_summary(console, {}, ["a"], None, None, None, None, model=model_label(cfg.model))
    assert "model: linknet-resnet18" in console.export_text()


def test_smp_base_config_is_not_a_model(tmp_path: Path) -> None:
    cfg = compose_train(["model=_smp"], output_dir=tmp_path)
    with pytest.raises(ConfigError, match="model.arch is not set"):
        check_config(cfg)


def test_classes_reach_model_loss_and_metrics_by_interpolation(tmp_path: Path) -> None:
    container = _container(["data.num_classes=7", "data.class_names=[a,b,c,d,e,f,g]"], tmp_path)
    assert container["model"]["num_classes"] == 7
    assert container["loss"]["ignore_index"] == container["data"]["ignore_index"]
    task = build_task(container)
    assert task.val_matrix.num_classes == 7
    assert task.class_names == list("abcdefg")


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
    presets = sorted(p.stem for p in (ROOT / "experiments" / "experiment").glob("*.yaml"))
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


# One weight per class of the default (synthetic, 6 classes) data.
WEIGHTS = [0.5, 1.0, 2.0, 1.0, 3.0, 1.5]


def _build_loss(cfg: DictConfig) -> torch.nn.Module:
    """The loss as the task builds it, with a Hydra-wrapped ConfigError unwrapped."""
    container = OmegaConf.to_container(cfg, resolve=True)
    try:
        return hydra.utils.instantiate(container["loss"], _convert_="all")
    except InstantiationException as error:
        if isinstance(error.__cause__, ConfigError):
            raise error.__cause__ from None
        raise


def _check_weighted(loss_fn: torch.nn.Module, name: str, weights: list[float]) -> None:
    """`weights` reached the loss and every term of it that can take class weights."""
    if name == "ce":
        terms = {"cross_entropy": loss_fn}
    else:
        assert loss_fn.class_weights == pytest.approx(weights)
        terms = {n: loss_fn.terms[n] for n in loss_fn.weighted_terms}
    assert terms
    for term in terms.values():
        assert term.class_weights.tolist() == pytest.approx(weights)


def _assert_weights_reach_the_loss(cfg, name: str, weights: list[float]) -> None:
    """The checked config builds a loss whose weighted terms hold `weights`; lovasz refuses."""
    check_config(cfg)
    if name == "lovasz":
        with pytest.raises(ConfigError, match="(?s)loss.class_weights.*lovasz"):
            _build_loss(cfg)
        return
    _check_weighted(_build_loss(cfg), name, weights)


@pytest.mark.parametrize("name", CHOICES["loss"])
def test_class_weights_compose_with_every_loss(name: str, tmp_path: Path) -> None:
    weights = ",".join(map(str, WEIGHTS))
    cfg = compose_train([f"loss={name}", f"loss.class_weights=[{weights}]"], output_dir=tmp_path)
    _assert_weights_reach_the_loss(cfg, name, WEIGHTS)


@pytest.mark.parametrize("name", CHOICES["loss"])
def test_auto_class_weights_reach_every_loss(
    name: str, tiny_synthetic_root: Path, tmp_path: Path
) -> None:
    # The class statistics are cached under the root: the tiny set is counted once.
    data = [*TINY_DATA, f"data.root={tiny_synthetic_root}"]
    cfg = compose_train([*data, f"loss={name}", "loss.class_weights=auto"], output_dir=tmp_path)
    resolve_auto_class_weights(cfg)  # as train.py does, before check_config
    weights = median_frequency_weights(dataset_stats(cfg.data))
    assert list(cfg.loss.class_weights) == weights and len(weights) == cfg.data.num_classes
    _assert_weights_reach_the_loss(cfg, name, weights)


@pytest.mark.parametrize(
    ("overrides", "sides"),
    [
        ([], (64, 64)),  # synthetic: data.image_size
        (["data=voc"], (512, 512)),  # the training crop wins over the image size
        (["data=ccp", "data.crop_size=384"], (384, 384)),
        (["data=lits"], (512, 512)),  # its slices' size
        (["data=voc", "model.min_size=800", "model.max_size=1333"], (800, 1333)),
    ],
)
def test_mask_rcnn_resizes_to_the_data_unless_told(
    overrides: list[str], sides: tuple[int, int], tmp_path: Path
) -> None:
    """torchvision's 800 px default upsampled 64 px images 12x (14 GB for 2 steps)."""
    from seglab.resolvers import training_side

    cfg = compose_train(["model=mask_rcnn", *overrides], output_dir=tmp_path)
    assert (cfg.model.min_size, cfg.model.max_size) == sides
    assert training_side("short", [512, 1024]) == 512 and training_side("long", [512, 1024]) == 1024
    assert (training_side("short"), training_side("long")) == (800, 1333)  # the data names none
