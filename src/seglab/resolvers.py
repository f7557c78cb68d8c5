"""OmegaConf resolvers used by seglab's configs; registered when `seglab` is imported."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from omegaconf import ListConfig, OmegaConf

from seglab import visualize
from seglab.compat import cpu_has_native_bf16 as _cpu_has_native_bf16  # tests patch it here


def auto_precision(accelerator: str = "auto") -> str:
    """Lightning precision for the hardware: bf16 where it is native, else the safe choice.

    bf16-mixed on GPUs with bf16 (Ampere on) and on CPUs with AVX-512 BF16 / AMX (≈ 1.5× faster
    training there); 16-mixed on older GPUs; 32-true on other CPUs, where bf16 is emulated.
    """
    import torch

    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    if accelerator in ("auto", "cpu") and _cpu_has_native_bf16():
        return "bf16-mixed"
    return "32-true"


def training_crop(data: Mapping[str, Any] | None) -> Any:
    """What training feeds the model (`data.crop_size`, else `data.image_size`), or None.

    The one reading of it: Mask R-CNN's resize (below), the sliding window's default and
    export.py's example input all follow it.
    """
    data = data or {}
    size = data.get("crop_size")
    return size if size is not None else data.get("image_size")


def training_side(which: str, crop_size: Any = None, image_size: Any = None) -> int:
    """The `short` or `long` side of what training feeds the model: data.crop_size, else
    data.image_size, else torchvision's detection default (800 short, 1333 long).

    Mask R-CNN resizes every image inside the model; sized to the data, a 64 px image stays
    64 px instead of being upsampled to 800 (14 GB and minutes per step on a CPU).
    """
    size = training_crop({"crop_size": crop_size, "image_size": image_size})
    if size is None:
        return {"short": 800, "long": 1333}[which]
    sides = [int(s) for s in size] if isinstance(size, Sequence | ListConfig) else [int(size)]
    return min(sides) if which == "short" else max(sides)


def voc_palette(n: int) -> list[list[int]]:
    """The VOC colormap's first n colours, for datasets without an official palette."""
    return [list(c) for c in visualize.voc_palette(int(n))]


def class_range(n: int) -> list[int]:
    """`${seglab.range:80}` → [0, ..., 79]: a run of class ids without listing them."""
    return list(range(int(n)))


def register_resolvers() -> None:
    """Idempotent: safe to call from every entry point and test."""
    OmegaConf.register_new_resolver("seglab.auto_precision", auto_precision, replace=True)
    OmegaConf.register_new_resolver("seglab.voc_palette", voc_palette, replace=True)
    OmegaConf.register_new_resolver("seglab.range", class_range, replace=True)
    OmegaConf.register_new_resolver("seglab.training_side", training_side, replace=True)
