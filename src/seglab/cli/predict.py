"""`python predict.py ckpt_path=... input=... output=...`: a mask and an overlay per image."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from PIL import Image
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from seglab.cli.common import report_user_errors
from seglab.data.transforms import build_transform
from seglab.errors import ConfigError
from seglab.inference.images import find_inputs, read_image
from seglab.tasks.checkpoint import load_task
from seglab.visualize import colorize, overlay, palette_array

SUMMARY_FILE = "summary.csv"


def _device(accelerator: str) -> str:
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return "cuda"
    if accelerator in ("gpu", "cuda"):
        raise ConfigError(f"accelerator={accelerator!r} but no CUDA device is available")
    return "cpu"


@torch.no_grad()
def predict_logits(task: Any, image: np.ndarray, normalize: Any) -> torch.Tensor:
    """K×H×W float32 logits at the image's own size, through the task's inference settings."""
    tensor = normalize(image=image)["image"][None].to(task.device)
    return task.infer(tensor)[0].float()


def _write_outputs(
    cfg: DictConfig, data: dict[str, Any], stem: Path, image: np.ndarray, logits: torch.Tensor
) -> np.ndarray:
    """<stem>_mask.png (palette PNG), <stem>_overlay.png and optionally <stem>_probs.npy."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    mask = logits.argmax(dim=0).to(torch.uint8).cpu().numpy()
    mask_image = Image.fromarray(mask, mode="P")
    mask_image.putpalette(palette_array(data["palette"], data["ignore_index"]).reshape(-1).tolist())
    mask_image.save(stem.parent / f"{stem.name}_mask.png")
    rgb = image if image.shape[-1] == 3 else np.repeat(image, 3, axis=-1)
    colours = colorize(mask, data["palette"], data["ignore_index"])
    Image.fromarray(overlay(rgb, colours, cfg.alpha)).save(stem.parent / f"{stem.name}_overlay.png")
    if cfg.probs:
        probs = torch.softmax(logits, dim=0).cpu().numpy().astype(cfg.probs_dtype)
        np.save(stem.parent / f"{stem.name}_probs.npy", probs)
    return mask


@report_user_errors
def predict(cfg: DictConfig) -> list[Path]:
    """Segment every input image; returns the mask paths. A summary CSV lists class shares."""
    if not 0 <= cfg.alpha <= 1:
        raise ConfigError(f"alpha={cfg.alpha}; expected a value in [0, 1]")
    inputs = find_inputs(str(cfg.input))
    infer = OmegaConf.to_container(cfg.infer, resolve=True) if cfg.get("infer") else None
    device = _device(cfg.accelerator)
    task = load_task(cfg.ckpt_path, map_location=device, infer=infer, semantic_only="predict.py")  # type: ignore[arg-type]
    data = task.hparams["data"]
    channels = int(data.get("in_channels", 3))
    # The checkpoint's own normalisation, through the pipeline validation used.
    normalize = build_transform(None, data["mean"], data["std"])
    out_dir = Path(cfg.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = list(data["class_names"])
    rows, written = [], []
    columns = (
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[name]}"), TimeRemainingColumn(),
    )  # fmt: skip
    with Progress(*columns, console=Console(stderr=True), disable=not cfg.progress_bar) as bar:
        job = bar.add_task("predicting", total=len(inputs), name="")
        for path, rel in inputs:
            bar.update(job, name=str(rel))
            image = read_image(path, channels)
            logits = predict_logits(task, image, normalize)
            stem = out_dir / rel.parent / rel.stem
            mask = _write_outputs(cfg, data, stem, image, logits)
            counts = np.bincount(mask.ravel(), minlength=len(names))[: len(names)]
            height, width = mask.shape
            mode = "slide" if task.infer_settings.slides(height, width) else "whole"
            shares = {n: round(float(c) / mask.size, 6) for n, c in zip(names, counts, strict=True)}
            rows.append({"image": str(rel), "width": width, "height": height, "inference": mode,
                         **shares})  # fmt: skip
            written.append(stem.parent / f"{stem.name}_mask.png")
            bar.advance(job)
    with (out_dir / SUMMARY_FILE).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    Console().print(f"{len(written)} images → {out_dir} (class shares: {out_dir / SUMMARY_FILE})")
    return written
