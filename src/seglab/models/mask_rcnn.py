"""Mask R-CNN from torchvision, sized to a dataset's thing classes, with seglab's config errors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torchvision
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor
from torchvision.ops import FrozenBatchNorm2d

from seglab.errors import ConfigError

VARIANTS = ("maskrcnn_resnet50_fpn_v2", "maskrcnn_resnet50_fpn", "resnet_fpn")
RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
_OFFLINE_HINT = (
    "model.{key}={weights!r} needs pretrained weights that could not be loaded ({error}).\n"
    "No network? Train from scratch with model.weights=null model.weights_backbone=null, or put "
    "the weights in the torch hub cache (TORCH_HOME) on a machine that can download them."
)


def detector_num_classes(thing_classes: Sequence[int]) -> int:
    """torchvision counts its background as class 0: thing class i is detector label i + 1."""
    return len(thing_classes) + 1


def _replace_heads(model: MaskRCNN, num_classes: int) -> None:
    """COCO-trained heads (91 classes) swapped for ones sized to the data (fine-tuning recipe)."""
    box_in = model.roi_heads.box_predictor.cls_score.in_features
    model.roi_heads.box_predictor = FastRCNNPredictor(box_in, num_classes)
    mask_in = model.roi_heads.mask_predictor.conv5_mask.in_channels
    model.roi_heads.mask_predictor = MaskRCNNPredictor(mask_in, 256, num_classes)


def build_mask_rcnn(
    thing_classes: Sequence[int],
    variant: str = "maskrcnn_resnet50_fpn_v2",
    backbone: str = "resnet50",
    weights: str | None = None,
    weights_backbone: str | None = None,
    trainable_backbone_layers: int | None = None,
    in_channels: int = 3,
    num_classes: int | None = None,
    **kwargs: Any,
) -> MaskRCNN:
    """A torchvision Mask R-CNN for the data's thing classes.

    Images arrive normalised by the data pipeline (data.mean/std), so the model's own
    normalisation is the identity; with ImageNet statistics (every RGB data config) pretrained
    weights see what they were trained on. `num_classes` (the semantic classes, for the
    pasted class map) is the task's business, not the network's. `kwargs` go to MaskRCNN
    (min_size, max_size, box_detections_per_img, box_score_thresh, rpn_*, box_*).
    """
    del num_classes
    if variant not in VARIANTS:
        raise ConfigError(f"model.variant={variant!r}; expected one of {', '.join(VARIANTS)}")
    if in_channels != 3:
        raise ConfigError(
            f"model=mask_rcnn needs 3 input channels (torchvision's ResNet stem), but "
            f"data.in_channels={in_channels}"
        )
    if not thing_classes:
        raise ConfigError("data.instance.thing_classes is empty: Mask R-CNN needs object classes")
    classes = detector_num_classes(thing_classes)
    kwargs = {"image_mean": [0.0, 0.0, 0.0], "image_std": [1.0, 1.0, 1.0], **kwargs}
    try:
        if variant == "resnet_fpn":
            if backbone not in RESNETS:
                raise ConfigError(
                    f"model.backbone={backbone!r}; expected one of {', '.join(RESNETS)}"
                )
            if weights is not None:
                raise ConfigError(
                    "model.weights (COCO Mask R-CNN weights) exist only for the maskrcnn_resnet50_* "
                    "variants; with variant=resnet_fpn use model.weights_backbone"
                )
            layers = 5 if trainable_backbone_layers is None else trainable_backbone_layers
            # Frozen BatchNorm only makes sense over pretrained statistics (as torchvision does).
            norm = FrozenBatchNorm2d if weights_backbone is not None else nn.BatchNorm2d
            fpn = resnet_fpn_backbone(
                backbone_name=backbone,
                weights=weights_backbone,
                trainable_layers=layers,
                norm_layer=norm,
            )
            return MaskRCNN(fpn, num_classes=classes, **kwargs)
        builder = getattr(torchvision.models.detection, variant)
        model = builder(
            weights=weights,
            weights_backbone=weights_backbone,
            trainable_backbone_layers=trainable_backbone_layers,
            # COCO weights come with 91 classes; the heads are replaced below.
            num_classes=None if weights is not None else classes,
            **kwargs,
        )
    except (OSError, RuntimeError) as error:  # download or hub failures
        if weights is None and weights_backbone is None:
            raise
        key = "weights" if weights is not None else "weights_backbone"
        hint = _OFFLINE_HINT.format(key=key, weights=weights or weights_backbone, error=error)
        raise ConfigError(hint) from error
    except (KeyError, ValueError) as error:  # an unknown weights enum name
        raise ConfigError(
            f"model.weights={weights!r} / model.weights_backbone={weights_backbone!r} are not "
            f"torchvision weights of {variant} (try DEFAULT): {error}"
        ) from error
    if weights is not None:
        _replace_heads(model, classes)
    return model
