"""torchvision's FCN / DeepLabV3 / LR-ASPP: built from their configs, with pretrained weights
from a local file, through every entry point like the smp models, and the one-command
pretrained overlay (`predict.py model=fcn model.weights=<file>`, no seglab checkpoint)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.models.segmentation as tv_seg
from PIL import Image

from seglab.cli.predict import predict
from seglab.errors import ConfigError
from seglab.models import build_torchvision_segmenter
from tests.conftest import CONF_DIR, compose_entry, new_store, run_entry_point
from tests.test_architectures_e2e import through_every_entry_point

TORCHVISION_MODELS = sorted(
    p.stem
    for p in (CONF_DIR / "model").glob("*.yaml")
    if not p.stem.startswith("_") and "_torchvision" in p.read_text()
)
# One precision each (a ResNet-50 step costs seconds); DeepLabV3 on MobileNetV3 with its aux head.
CASES = [
    ("fcn", "32-true", []),
    ("deeplabv3_tv", "bf16-mixed", ["model.backbone=mobilenet_v3_large", "model.aux_loss=0.5"]),
    ("lraspp", "32-true", []),
]


def test_every_torchvision_model_has_a_config() -> None:
    assert set(TORCHVISION_MODELS) == {"fcn", "deeplabv3_tv", "lraspp"}
    assert {name for name, _, _ in CASES} == set(TORCHVISION_MODELS)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return new_store(tmp_path_factory.mktemp("mlflow"))


@pytest.mark.slow
@pytest.mark.parametrize(("model", "precision", "extra"), CASES)
def test_torchvision_model_through_every_entry_point(
    model: str, precision: str, extra: list[str], tiny_synthetic_root: Path, store: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    through_every_entry_point(
        [f"model={model}", *extra], precision, tiny_synthetic_root, store, tmp_path
    )


def test_aux_head_follows_aux_loss() -> None:
    with_aux = build_torchvision_segmenter("fcn", "resnet50", aux_loss=0.5, num_classes=3)
    without = build_torchvision_segmenter("lraspp", "mobilenet_v3_large", num_classes=3)
    assert with_aux.has_aux and not without.has_aux
    out, aux = with_aux.eval().forward_with_aux(torch.rand(1, 3, 40, 48))
    assert out.shape == aux.shape == (1, 3, 40, 48)
    with pytest.raises(ConfigError, match="LR-ASPP has no auxiliary head"):
        build_torchvision_segmenter("lraspp", "mobilenet_v3_large", aux_loss=0.5)
    with pytest.raises(ConfigError, match="model.backbone='resnet18'"):
        build_torchvision_segmenter("fcn", "resnet18")


def test_weights_from_a_local_file_and_heads_resized(tmp_path: Path) -> None:
    """torchvision's own state dict (21 VOC classes + aux head), as its download would give."""
    reference = tv_seg.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None).eval()
    path = tmp_path / "lraspp.pth"
    torch.save(reference.state_dict(), path)
    image = torch.rand(1, 3, 64, 64)
    same = build_torchvision_segmenter("lraspp", "mobilenet_v3_large", weights=str(path))
    torch.testing.assert_close(same.eval()(image), reference(image)["out"])
    resized = build_torchvision_segmenter(
        "lraspp", "mobilenet_v3_large", weights=str(path), num_classes=6
    )
    assert resized.eval()(image).shape == (1, 6, 64, 64)
    with pytest.raises(ConfigError, match="model.weights=.*no such file"):
        build_torchvision_segmenter("fcn", "resnet50", weights=str(tmp_path / "none.pth"))


def test_torchvision_names_offline_say_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty hub cache: a download is tried
    with pytest.raises(ConfigError, match=r"(?s)model.weights='DEFAULT'.*torch hub cache.*path"):
        build_torchvision_segmenter("lraspp", "mobilenet_v3_large", weights="DEFAULT")
    with pytest.raises(ConfigError, match="not torchvision weights"):
        build_torchvision_segmenter("lraspp", "mobilenet_v3_large", weights="NOPE_V9")


@pytest.mark.slow
def test_pretrained_overlay_in_one_command(tiny_synthetic_root: Path, tmp_path: Path) -> None:
    """README's `python predict.py model=fcn model.weights=<file> input=photos/ output=out/`:
    torchvision's VOC layout (21 classes, aux head) saved from a fresh model, no checkpoint."""
    torch.manual_seed(0)
    reference = tv_seg.fcn_resnet50(weights=None, weights_backbone=None, aux_loss=True).eval()
    weights = tmp_path / "fcn_resnet50_coco.pth"
    torch.save(reference.state_dict(), weights)
    photos = tmp_path / "photos"
    photos.mkdir()
    source = next((tiny_synthetic_root / "VOCdevkit" / "VOC2012" / "JPEGImages").glob("*.jpg"))
    (photos / "street.jpg").write_bytes(source.read_bytes())
    proc = run_entry_point(
        "predict.py",
        ["model=fcn", f"model.weights={weights}", "input=photos/", "output=out/",
         "progress_bar=false", "precision=32-true"],
        tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    out = tmp_path / "out"
    with Image.open(out / "street_mask.png") as mask, Image.open(source) as image:
        assert mask.mode == "P" and mask.size == image.size
        predicted = np.asarray(mask)
        palette = mask.getpalette()[: 21 * 3]
    assert palette[3:6] == [128, 0, 0]  # VOC's aeroplane colour
    assert (out / "street_overlay.png").is_file()
    header = (out / "summary.csv").read_text().splitlines()[0]
    assert "aeroplane" in header and "tvmonitor" in header
    assert predicted.max() < 21


def test_predict_without_checkpoint_or_weights_says_what_to_give(tmp_path: Path) -> None:
    image = tmp_path / "x.png"
    Image.new("RGB", (8, 8)).save(image)
    for model, message in (([], "ckpt_path= is missing"), (["model=lraspp"], "weights=None")):
        cfg = compose_entry("predict", [*model, f"input={image}", "output=out/"], tmp_path)
        with pytest.raises(ConfigError, match=message):
            predict.__wrapped__(cfg)  # undecorated: the error itself, not the exit code


def test_backbone_weights_from_a_local_file(tmp_path: Path) -> None:
    """ImageNet classification weights (torchvision's MobileNetV3 layout: `features.`, a
    classifier) into the segmentation model's backbone."""
    from torchvision.models import mobilenet_v3_large

    classifier = mobilenet_v3_large(weights=None)
    path = tmp_path / "mobilenet_v3_large.pth"
    torch.save(classifier.state_dict(), path)
    net = build_torchvision_segmenter("lraspp", "mobilenet_v3_large", weights_backbone=str(path))
    first = net.model.backbone.state_dict()["0.0.weight"]
    torch.testing.assert_close(first, classifier.features[0][0].weight)
    torch.save({"conv1.weight": torch.zeros(1)}, path)
    with pytest.raises(ConfigError, match="weights_backbone=.*does not fit the backbone"):
        build_torchvision_segmenter("lraspp", "mobilenet_v3_large", weights_backbone=str(path))
