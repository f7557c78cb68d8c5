"""`python predict.py ckpt_path=... input=... output=...`: a mask and an overlay per image."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import albumentations as A
import numpy as np
import torch
from omegaconf import DictConfig
from PIL import Image
from rich.progress import track

from seglab.cli.common import report_user_errors
from seglab.data.transforms import build_transform
from seglab.errors import SeglabError
from seglab.tasks.checkpoint import load_task
from seglab.visualize import colorize, overlay, palette_array

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def find_images(source: Path) -> Iterator[Path]:
    """The image itself, or every image under a folder (sorted, recursive)."""
    if source.is_file():
        yield source
    elif source.is_dir():
        yield from sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    else:
        raise SeglabError(f"input={str(source)!r}: no such file or folder")


def read_rgb(path: Path) -> np.ndarray:
    """H×W×3 uint8 from any common mode (RGBA, grayscale, palette, 16-bit)."""
    with Image.open(path) as image:
        if image.mode in ("I;16", "I;16B", "I;16L", "I"):
            array = np.asarray(image, dtype=np.float64)
            array = 255 * array / max(array.max(), 1)
            return np.repeat(array.astype(np.uint8)[..., None], 3, axis=-1)
        return np.array(image.convert("RGB"))


@torch.no_grad()
def predict_mask(task: torch.nn.Module, rgb: np.ndarray, normalize: A.Compose) -> np.ndarray:
    """Class ids (H×W) at the image's own size."""
    image = normalize(image=rgb)["image"]
    logits = task(image[None].to(task.device))
    return logits.argmax(dim=1)[0].cpu().numpy().astype(np.uint8)


@report_user_errors
def predict(cfg: DictConfig) -> list[Path]:
    """Write `<stem>_mask.png` (palette PNG of class ids) and `<stem>_overlay.png` per image."""
    device = "cuda" if cfg.accelerator in ("auto", "gpu") and torch.cuda.is_available() else "cpu"
    task = load_task(cfg.ckpt_path, map_location=device)
    data = task.hparams["data"]
    images = list(find_images(Path(cfg.input)))
    if not images:
        raise SeglabError(
            f"input={cfg.input!r} holds no image ({', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    out_dir = Path(cfg.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    # The checkpoint's own normalisation, through the pipeline validation used.
    normalize = build_transform(None, data["mean"], data["std"])
    flat_palette = palette_array(data["palette"], data["ignore_index"]).reshape(-1).tolist()
    written = []
    for path in track(images, description="predicting"):
        rgb = read_rgb(path)
        mask = predict_mask(task, rgb, normalize)
        mask_image = Image.fromarray(mask, mode="P")
        mask_image.putpalette(flat_palette)
        mask_path = out_dir / f"{path.stem}_mask.png"
        mask_image.save(mask_path)
        blended = overlay(rgb, colorize(mask, data["palette"], data["ignore_index"]), cfg.alpha)
        Image.fromarray(blended).save(out_dir / f"{path.stem}_overlay.png")
        written.append(mask_path)
    return written
