"""OmegaConf resolvers used by seglab's configs; registered when `seglab` is imported."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import ListConfig, OmegaConf

from seglab import visualize
from seglab.compat import cpu_has_native_bf16 as _cpu_has_native_bf16  # tests patch it here
from seglab.errors import ConfigError


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


# --- data=folder: the classes of a user's folder (classes.yaml / classes.txt in data.root) ---
CLASS_FILES = ("classes.yaml", "classes.yml", "classes.txt")


def _class_file(root: Path) -> Path | None:
    return next((root / n for n in CLASS_FILES if (root / n).is_file()), None)


def _read_class_file(path: Path) -> tuple[list[str], list[list[int]] | None]:
    """(names, colours or None) from classes.yaml (a list of names, or name: [r, g, b]) or
    classes.txt (one name per line)."""
    if path.suffix == ".txt":
        names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        return names, None
    import yaml

    try:
        content = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from error
    if isinstance(content, list) and all(isinstance(n, str | int) for n in content):
        return [str(n) for n in content], None
    if isinstance(content, dict):
        colours = [_colour(c, path, name) for name, c in content.items()]
        return [str(n) for n in content], colours
    raise ConfigError(
        f"{path}: expected a list of class names or a mapping name: [r, g, b], got "
        f"{type(content).__name__}"
    )


def _colour(value: Any, path: Path, name: Any) -> list[int]:
    if (
        not isinstance(value, Sequence)
        or len(value) != 3
        or not all(isinstance(v, int) and 0 <= v <= 255 for v in value)
    ):
        raise ConfigError(f"{path}: class {name!r}: colour {value!r} is not [r, g, b] in 0..255")
    return [int(v) for v in value]


def folder_classes(root: str) -> list[str]:
    """`data.class_names` of data=folder unless the config sets them: the root's class file."""
    if not Path(root).expanduser().is_dir():
        raise ConfigError(f"data=folder: data.root={root} is not a directory")
    path = _class_file(Path(root).expanduser())
    if path is None:
        raise ConfigError(
            f"data=folder: no class list: set data.class_names=[background,...] or put "
            f"classes.yaml or classes.txt in {root}"
        )
    names, _ = _read_class_file(path)
    if not names:
        raise ConfigError(f"{path}: no class names in it")
    return names


def folder_palette(root: str, class_names: Sequence[str]) -> list[list[int]]:
    """`data.palette`: the colours of classes.yaml when it has them, else the VOC colormap."""
    path = _class_file(Path(root).expanduser())
    if path is not None:
        names, colours = _read_class_file(path)
        if colours is not None and list(names) == list(class_names):
            return colours
    return voc_palette(len(class_names))


def count(items: Sequence[Any]) -> int:
    """`${seglab.len:${data.class_names}}`: data.num_classes from the class list."""
    return len(items)


def thing_classes(num_classes: int) -> list[int]:
    """Every class but 0 (background): the default objects of a user's folder (model=mask_rcnn)."""
    return list(range(1, int(num_classes)))


def register_resolvers() -> None:
    """Idempotent: safe to call from every entry point and test."""
    OmegaConf.register_new_resolver("seglab.auto_precision", auto_precision, replace=True)
    OmegaConf.register_new_resolver("seglab.voc_palette", voc_palette, replace=True)
    OmegaConf.register_new_resolver("seglab.range", class_range, replace=True)
    OmegaConf.register_new_resolver("seglab.training_side", training_side, replace=True)
    OmegaConf.register_new_resolver("seglab.folder_classes", folder_classes, replace=True)
    OmegaConf.register_new_resolver("seglab.folder_palette", folder_palette, replace=True)
    OmegaConf.register_new_resolver("seglab.len", count, replace=True)
    OmegaConf.register_new_resolver("seglab.things", thing_classes, replace=True)
