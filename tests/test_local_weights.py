"""Pretrained weights from a local file (offline cluster nodes): saved from a freshly built
network, loaded through the config, every tensor equal; keys that do not fit are named."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from hydra.errors import InstantiationException
from torch import nn

from seglab.errors import ConfigError, user_error
from seglab.models import build_model
from tests.conftest import compose_train

SMALL_MASK_RCNN = ["model=mask_rcnn", "data=synthetic", "data.image_size=64"]


def _model_cfg(overrides: list[str]) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(compose_train(overrides).model, resolve=True)  # type: ignore[return-value]


def _assert_loaded(module: nn.Module, saved: dict[str, torch.Tensor], prefix: str = "") -> None:
    """Every tensor of the file is the module's (under `prefix`), none left as built."""
    state = module.state_dict()
    assert saved, "nothing saved"
    for name, tensor in saved.items():
        torch.testing.assert_close(state[prefix + name], tensor, rtol=0, atol=0, msg=name)


def _refused(cfg: dict, message: str) -> None:
    """Building `cfg` stops with a ConfigError (as the entry points report it) matching `message`."""
    with pytest.raises(InstantiationException) as raised:
        build_model(cfg)
    assert isinstance(user_error(raised.value), ConfigError)
    assert raised.match(message)


def _randomised(module: nn.Module) -> dict[str, torch.Tensor]:
    """The module's state with every float tensor redrawn, so equal means loaded, not re-seeded."""
    generator = torch.Generator().manual_seed(7)
    return {
        k: torch.randn(v.shape, generator=generator) if v.is_floating_point() else v.clone()
        for k, v in module.state_dict().items()
    }


@pytest.mark.parametrize("encoder", ["resnet18", "tu-resnet10t"])
def test_smp_encoder_weights_from_a_file(encoder: str, tmp_path: Path) -> None:
    fresh = build_model(_model_cfg(["model=unet", f"model.encoder={encoder}"]))
    saved = _randomised(fresh.encoder)
    torch.save(saved, tmp_path / "encoder.pth")
    cfg = _model_cfg(
        ["model=unet", f"model.encoder={encoder}", f"model.encoder_weights={tmp_path}/encoder.pth"]
    )
    _assert_loaded(build_model(cfg).encoder, saved)


def test_smp_encoder_from_a_torchvision_and_a_timm_checkpoint(tmp_path: Path) -> None:
    """A torchvision ResNet-18 state dict (with its fc head) fits smp's resnet18 encoder, and a
    timm resnet10t one (wrapped as training scripts save it) fits `tu-resnet10t`."""
    import timm

    resnet = _randomised(torchvision.models.resnet18())
    torch.save(resnet, tmp_path / "resnet18.pth")
    cfg = _model_cfg(["model=fpn", f"model.encoder_weights={tmp_path}/resnet18.pth"])
    _assert_loaded(build_model(cfg).encoder, {k: v for k, v in resnet.items() if "fc." not in k})

    timm_state = _randomised(timm.create_model("resnet10t"))
    torch.save({"state_dict": timm_state, "epoch": 3}, tmp_path / "timm.pth")
    cfg = _model_cfg(
        ["model=unet", "model.encoder=tu-resnet10t", f"model.encoder_weights={tmp_path}/timm.pth"]
    )
    backbone = {k: v for k, v in timm_state.items() if not k.startswith("fc.")}
    _assert_loaded(build_model(cfg).encoder, backbone, prefix="model.")


def test_keys_that_do_not_fit_are_listed(tmp_path: Path) -> None:
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "r18.pth")
    cfg = _model_cfg(
        ["model=unet", "model.encoder=resnet34", f"model.encoder_weights={tmp_path}/r18.pth"]
    )
    _refused(
        cfg,
        r"does not fit encoder 'resnet34': 80 missing from the file: "
        r"layer1\.2\.conv1\.weight, layer1\.2\.bn1\.weight, layer1\.2\.bn1\.bias, \.\.\.",
    )
    torch.save({"conv1.weight": torch.zeros(64, 3, 3, 3)}, tmp_path / "bad.pth")
    cfg = _model_cfg(["model=unet", f"model.encoder_weights={tmp_path}/bad.pth"])
    _refused(
        cfg, r"of another shape: conv1\.weight \(64, 3, 3, 3\) in the file, \(64, 3, 7, 7\) here"
    )
    missing = _model_cfg(["model=unet", f"model.encoder_weights={tmp_path}/nope.pth"])
    _refused(missing, r"model\.encoder_weights=.*nope\.pth.*no such file")


def test_mask_rcnn_weights_and_backbone_from_files(tmp_path: Path) -> None:
    light = [*SMALL_MASK_RCNN, "model.variant=resnet_fpn", "model.backbone=resnet18"]
    fresh = build_model(_model_cfg(light))
    whole = _randomised(fresh)
    torch.save(whole, tmp_path / "maskrcnn.pth")
    loaded = build_model(_model_cfg([*light, f"model.weights={tmp_path}/maskrcnn.pth"]))
    _assert_loaded(loaded, whole)
    # torchvision's default for pretrained backbones: layers 2-4 train, the stem is frozen.
    body = dict(loaded.backbone.body.named_parameters())
    assert not body["conv1.weight"].requires_grad and body["layer4.0.conv1.weight"].requires_grad

    resnet = _randomised(torchvision.models.resnet18())  # an ImageNet classifier's state dict
    torch.save(resnet, tmp_path / "resnet18.pth")
    cfg = _model_cfg([*light, f"model.weights_backbone={tmp_path}/resnet18.pth"])
    body_state = {k: v for k, v in resnet.items() if not k.startswith("fc.")}
    _assert_loaded(build_model(cfg).backbone.body, body_state)


def test_mask_rcnn_whole_model_file_of_other_classes_keeps_new_heads(tmp_path: Path) -> None:
    """A COCO-sized file (91 classes, torchvision's own layout) into a 5-class detector: every
    tensor but the class-sized heads loaded, the heads sized to the data (fine-tuning)."""
    coco = torchvision.models.detection.maskrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=91
    )
    saved = _randomised(coco)
    torch.save(saved, tmp_path / "coco.pth")
    cfg = _model_cfg(
        [
            *SMALL_MASK_RCNN,
            "model.variant=maskrcnn_resnet50_fpn",
            f"model.weights={tmp_path}/coco.pth",
        ]
    )
    model = build_model(cfg)
    heads = ("roi_heads.box_predictor.", "roi_heads.mask_predictor.mask_fcn_logits.")
    _assert_loaded(model, {k: v for k, v in saved.items() if not k.startswith(heads)})
    assert model.roi_heads.box_predictor.cls_score.out_features == 6  # 5 things + background
