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
from seglab.models.weights_file import is_weights_file, load_weights_file

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
    if is_weights_file(weights) or is_weights_file(weights_backbone):
        return _from_files(
            thing_classes, variant, backbone, weights, weights_backbone, trainable_backbone_layers,
            **kwargs,
        )  # fmt: skip
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


# The detector's class-sized layers: a whole-model file trained on other classes (COCO's 91)
# leaves them as built for the data's classes, as torchvision's named weights do.
_CLASS_HEADS = ("roi_heads.box_predictor.", "roi_heads.mask_predictor.mask_fcn_logits.")
_BACKBONE_LAYERS = ("layer4", "layer3", "layer2", "layer1", "conv1")


def _from_files(
    thing_classes: Sequence[int],
    variant: str,
    backbone: str,
    weights: str | None,
    weights_backbone: str | None,
    trainable_backbone_layers: int | None,
    **kwargs: Any,
) -> MaskRCNN:
    """`model.weights` / `model.weights_backbone` given as local files: the network built as from
    scratch, the files loaded into it (the whole model, or the ResNet under the FPN), and the
    backbone frozen below `trainable_backbone_layers` (torchvision's 3 for pretrained ones)."""
    for key, value in (("weights", weights), ("weights_backbone", weights_backbone)):
        if value is not None and not is_weights_file(value):
            raise ConfigError(
                f"model.{key}={value!r}: give both weights as files, or both as torchvision names"
            )
    model = build_mask_rcnn(thing_classes, variant, backbone, None, None, None, **kwargs)
    if weights_backbone is not None:
        what = f"the {backbone if variant == 'resnet_fpn' else 'resnet50'} under the FPN"
        load_weights_file(model.backbone.body, weights_backbone, "weights_backbone", what)
    if weights is not None:
        load_weights_file(model, weights, "weights", f"Mask R-CNN {variant}", _CLASS_HEADS)
    layers = 3 if trainable_backbone_layers is None else int(trainable_backbone_layers)
    if not 0 <= layers <= 5:
        raise ConfigError(f"model.trainable_backbone_layers={layers}; expected 0..5")
    trained = _BACKBONE_LAYERS[:layers] + (("bn1",) if layers == 5 else ())
    for name, parameter in model.backbone.body.named_parameters():
        parameter.requires_grad_(name.startswith(trained))
    return model
