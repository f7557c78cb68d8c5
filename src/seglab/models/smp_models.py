"""Semantic segmentation networks from segmentation-models-pytorch, built through smp's own factory."""

from __future__ import annotations

from typing import Any

import segmentation_models_pytorch as smp
from torch import nn

from seglab.errors import ConfigError

_OFFLINE_HINT = (
    "model.encoder_weights={weights!r} needs the pretrained weights of encoder {encoder!r}, "
    "which could not be loaded ({error}).\n"
    "No network? Train from scratch with model.encoder_weights=null, or put the weights in the "
    "Hugging Face / torch hub cache (HF_HOME, TORCH_HOME) on a machine that can download them."
)


def build_smp_model(
    arch: str,
    encoder: str = "resnet18",
    encoder_weights: str | None = None,
    in_channels: int = 3,
    num_classes: int = 2,
    **kwargs: Any,
) -> nn.Module:
    """`smp.create_model` with errors that name the config key at fault."""
    if arch.lower() not in smp.MODEL_ARCHITECTURES_MAPPING:
        known = ", ".join(sorted(smp.MODEL_ARCHITECTURES_MAPPING))
        raise ConfigError(
            f"model.arch={arch!r} is not an smp architecture; expected one of: {known}"
        )
    if encoder not in smp.encoders.get_encoder_names():
        raise ConfigError(
            f"model.encoder={encoder!r} is not an smp encoder; see "
            "segmentation_models_pytorch.encoders.get_encoder_names() for the list "
            "(e.g. resnet18, resnet50, efficientnet-b0, mobilenet_v2, tu-convnext_tiny)."
        )
    try:
        return smp.create_model(
            arch,
            encoder_name=encoder,
            encoder_weights=encoder_weights,
            in_channels=in_channels,
            classes=num_classes,
            **kwargs,
        )
    except (OSError, RuntimeError, ValueError) as error:
        if encoder_weights is None:
            raise
        msg = _OFFLINE_HINT.format(weights=encoder_weights, encoder=encoder, error=error)
        raise ConfigError(msg) from error
    except KeyError as error:
        raise ConfigError(
            f"model.encoder_weights={encoder_weights!r} is not available for encoder "
            f"{encoder!r}: {error}"
        ) from error
