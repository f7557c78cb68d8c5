"""Semantic segmentation networks from segmentation-models-pytorch, built through smp's own factory."""

from __future__ import annotations

from typing import Any

import segmentation_models_pytorch as smp
from torch import nn

from seglab.errors import ConfigError
from seglab.models.weights_file import is_weights_file, load_weights_file

_OFFLINE_HINT = (
    "model.encoder_weights={weights!r} needs the pretrained weights of encoder {encoder!r}, "
    "which could not be loaded ({error}).\n"
    "No network? Train from scratch with model.encoder_weights=null, or put the weights in the "
    "Hugging Face / torch hub cache (HF_HOME, TORCH_HOME) on a machine that can download them."
)


def check_encoder(encoder: str) -> None:
    """A ConfigError unless smp can build `encoder`: a built-in smp encoder, or `tu-<name>` for
    any model timm can create (smp's `get_encoder_names()` lists only the built-ins)."""
    if encoder.startswith("tu-"):
        import timm

        if not timm.is_model(encoder[3:]):  # accepts pretrained tags: tu-resnet18.a1_in1k
            raise ConfigError(
                f"model.encoder={encoder!r}: timm has no model {encoder[3:]!r}; "
                "timm.list_models() lists them (e.g. timm.list_models('convnext*')), "
                "used as model.encoder=tu-<name> (e.g. tu-convnext_tiny, tu-resnet10t)."
            )
        return
    if encoder not in smp.encoders.get_encoder_names():
        raise ConfigError(
            f"model.encoder={encoder!r} is not an smp encoder; "
            "segmentation_models_pytorch.encoders.get_encoder_names() lists the built-in ones "
            "(e.g. resnet18, resnet50, efficientnet-b0, mobilenet_v2), and any timm model is "
            "one as tu-<name> (e.g. tu-convnext_tiny; timm.list_models() lists them)."
        )


def build_smp_model(
    arch: str,
    encoder: str = "resnet18",
    encoder_weights: str | None = None,
    in_channels: int = 3,
    num_classes: int = 2,
    **kwargs: Any,
) -> nn.Module:
    """`smp.create_model` with errors that name the config key at fault. `encoder_weights`:
    smp's name (imagenet, ...; downloaded) or the path of a saved encoder / timm / torchvision
    state dict (read offline, see seglab.models.weights_file)."""
    if arch.lower() not in smp.MODEL_ARCHITECTURES_MAPPING:
        known = ", ".join(sorted(smp.MODEL_ARCHITECTURES_MAPPING))
        raise ConfigError(
            f"model.arch={arch!r} is not an smp architecture; expected one of: {known}"
        )
    check_encoder(encoder)
    if is_weights_file(encoder_weights):
        # A local file: the encoder built as from scratch, then the file's tensors loaded.
        model = build_smp_model(arch, encoder, None, in_channels, num_classes, **kwargs)
        load_weights_file(model.encoder, encoder_weights, "encoder_weights", f"encoder {encoder!r}")
        return model
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
        if encoder_weights is None:  # nothing to download: the arch/encoder pair is at fault
            raise ConfigError(
                f"smp cannot build model.arch={arch!r} with model.encoder={encoder!r}: {error}"
            ) from error
        msg = _OFFLINE_HINT.format(weights=encoder_weights, encoder=encoder, error=error)
        raise ConfigError(msg) from error
    except KeyError as error:
        raise ConfigError(
            f"model.encoder_weights={encoder_weights!r} is not available for encoder "
            f"{encoder!r}: {error}"
        ) from error
