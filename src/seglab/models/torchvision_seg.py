"""torchvision's semantic segmentation models (FCN, DeepLabV3, LR-ASPP) as seglab networks.

torchvision's models return a dict ({"out", "aux"}); seglab's task, export and inference want a
network mapping an image to logits. `TorchvisionSegmenter` gives them that, and the task asks
`forward_with_aux` for the auxiliary head's logits when it trains with them.
"""

from __future__ import annotations

from typing import Any

import torchvision.models.segmentation as tv_seg
from torch import Tensor, nn

from seglab.errors import ConfigError
from seglab.models.weights_file import is_weights_file, read_state_dict

# model.arch -> the backbones torchvision builds it with (builder: <arch>_<backbone>).
BACKBONES = {
    "fcn": ("resnet50", "resnet101"),
    "deeplabv3": ("resnet50", "resnet101", "mobilenet_v3_large"),
    "lraspp": ("mobilenet_v3_large",),
}
# The 1×1 convolutions that output class scores (replaced when the data's classes differ).
HEADS = (
    "classifier.4",
    "aux_classifier.4",
    "classifier.low_classifier",
    "classifier.high_classifier",
)
_OFFLINE_HINT = (
    "model.{key}={weights!r} names torchvision weights that could not be loaded ({error}).\n"
    "No network? Put the file torchvision downloads in the torch hub cache "
    "($TORCH_HOME/hub/checkpoints) on a machine that can download it, or give the path of a "
    "saved state dict: model.{key}=/path/to/weights.pth"
)


class TorchvisionSegmenter(nn.Module):
    """A torchvision segmentation model seen as image → logits; `model` keeps torchvision's
    parameter names under `model.`, so its state dicts load into torchvision's own classes."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    @property
    def has_aux(self) -> bool:
        return getattr(self.model, "aux_classifier", None) is not None

    def forward(self, image: Tensor) -> Tensor:
        return self.model(image)["out"]

    def forward_with_aux(self, image: Tensor) -> tuple[Tensor, Tensor | None]:
        """Main and auxiliary logits (None without an aux head), both at the input's size."""
        outputs = self.model(image)
        return outputs["out"], outputs.get("aux")


def _replace_heads(model: nn.Module, num_classes: int) -> None:
    """Pretrained heads (21 VOC classes) swapped for ones sized to the data (fine-tuning)."""
    for name in HEADS:
        try:
            old = model.get_submodule(name)
        except AttributeError:  # this architecture has no such head (or its aux head is off)
            continue
        if old.out_channels != num_classes:
            parent, _, child = name.rpartition(".")
            new = nn.Conv2d(old.in_channels, num_classes, kernel_size=1)
            setattr(model.get_submodule(parent), child, new)


def _load_backbone(model: nn.Module, path: str) -> None:
    """ImageNet classification weights from a file into the segmentation model's backbone
    (ResNet keys as they are; MobileNetV3's `features.` prefix dropped; the classifier left out)."""
    state = read_state_dict(path, "weights_backbone")
    state = {k.removeprefix("features."): v for k, v in state.items()}
    expected = model.backbone.state_dict()
    missing = [k for k in expected if k not in state]
    if missing:
        raise ConfigError(
            f"model.weights_backbone={path!r} does not fit the backbone: {len(missing)} tensors "
            f"are missing ({', '.join(missing[:3])}, ...)"
        )
    model.backbone.load_state_dict({k: state[k] for k in expected})


def _build(
    builder: Any, weights: str | None, backbone_weights: str | None, aux: bool, classes: int
) -> nn.Module:
    """torchvision's builder; a local `weights` file is loaded after building the same layout."""
    if not is_weights_file(weights):
        return builder(
            weights=weights,
            weights_backbone=backbone_weights,
            num_classes=None if weights else classes,
            aux_loss=aux if not weights else None,
        )
    state = read_state_dict(weights, "weights")
    state = {k.removeprefix("model."): v for k, v in state.items()}  # a seglab net's own dict
    head = next((state[f"{h}.weight"] for h in HEADS if f"{h}.weight" in state), None)
    if head is None:
        raise ConfigError(
            f"model.weights={weights!r} holds no {builder.__name__} classifier weights"
        )
    file_aux = any(k.startswith("aux_classifier.") for k in state)
    model = builder(
        weights=None, weights_backbone=None, num_classes=head.shape[0], aux_loss=file_aux or None
    )
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise ConfigError(
            f"model.weights={weights!r} does not fit {builder.__name__}: {error}"
        ) from error
    return model


def build_torchvision_segmenter(
    arch: str,
    backbone: str,
    weights: str | None = None,
    weights_backbone: str | None = None,
    aux_loss: float | None = None,
    in_channels: int = 3,
    num_classes: int = 21,
) -> TorchvisionSegmenter:
    """FCN / DeepLabV3 / LR-ASPP of torchvision for `num_classes`.

    `weights` / `weights_backbone`: torchvision's names (DEFAULT, COCO_WITH_VOC_LABELS_V1,
    IMAGENET1K_V1: downloaded, or read from the torch hub cache) or the path of a saved state
    dict. Pretrained heads of another class count are replaced (fine-tuning); an aux head that
    came with the weights is dropped unless `aux_loss` (its loss weight) asks for one.
    """
    if arch not in BACKBONES:
        raise ConfigError(f"model.arch={arch!r}; expected one of {', '.join(BACKBONES)}")
    if backbone not in BACKBONES[arch]:
        raise ConfigError(
            f"model.backbone={backbone!r} for {arch}; expected one of {', '.join(BACKBONES[arch])}"
        )
    if in_channels != 3:
        raise ConfigError(
            f"model.arch={arch} needs 3 input channels (torchvision's backbones), but data.in_channels={in_channels}"
        )
    aux = bool(aux_loss)
    if aux and arch == "lraspp":
        raise ConfigError("model.aux_loss: LR-ASPP has no auxiliary head; set model.aux_loss=null")
    builder = getattr(tv_seg, f"{arch}_{backbone}")
    backbone_name = None if is_weights_file(weights_backbone) else weights_backbone
    try:
        model = _build(builder, weights, backbone_name, aux, num_classes)
    except (OSError, RuntimeError) as error:  # download or hub failures
        key = "weights" if weights is not None else "weights_backbone"
        if weights is None and weights_backbone is None:
            raise
        raise ConfigError(
            _OFFLINE_HINT.format(key=key, weights=weights or weights_backbone, error=error)
        ) from error
    except (KeyError, ValueError) as error:  # an unknown weights enum name
        raise ConfigError(
            f"model.weights={weights!r} / model.weights_backbone={weights_backbone!r} are not "
            f"torchvision weights of {builder.__name__} (try DEFAULT, or a file path): {error}"
        ) from error
    if is_weights_file(weights_backbone):
        _load_backbone(model, weights_backbone)
    if weights is not None:
        _replace_heads(model, num_classes)
        if not aux:
            model.aux_classifier = None
        elif getattr(model, "aux_classifier", None) is None:
            raise ConfigError(
                f"model.aux_loss={aux_loss}: model.weights={weights!r} come without an auxiliary head; set model.aux_loss=null"
            )
    return TorchvisionSegmenter(model)
