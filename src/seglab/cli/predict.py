"""`python predict.py ckpt_path=... input=... output=...`: a mask and an overlay per image.
`python predict.py model=fcn model.weights=<file> input=... output=...`: the same with a
pretrained torchvision model and no checkpoint (VOC's classes and palette by default).
Instance checkpoints (Mask R-CNN) write instances instead: see `seglab.cli.predict_instances`.

Each image is read by the reader the datasets use and shown to the model as validation shows
it (the checkpoint's `data.val_transforms` and normalisation); the logits are then cropped to
the image and resized to its own size, so masks, overlays and probabilities match the input.
"""

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

from seglab.cli.predict_instances import write_instance_outputs
from seglab.data.io import read_image
from seglab.errors import ConfigError, report_user_errors
from seglab.inference.at_source import detect_at_source, predict_logits
from seglab.inference.images import find_inputs
from seglab.inference.precision import precision_plugin
from seglab.inference.view import ValidationView
from seglab.resolvers import auto_precision
from seglab.serving.model_uri import checkpoint_from_model_uri
from seglab.tasks.base import SegmentationTask
from seglab.tasks.checkpoint import checkpoint_precision, load_task, read_checkpoint
from seglab.tasks.pretrained import pretrained_task
from seglab.visualize import colorize, overlay, palette_array

SUMMARY_FILE = "summary.csv"


def _device(accelerator: str) -> str:
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return "cuda"
    if accelerator in ("gpu", "cuda"):
        raise ConfigError(f"accelerator={accelerator!r} but no CUDA device is available")
    return "cpu"


def _task_and_precision(
    cfg: DictConfig, infer: dict[str, Any] | None, device: str
) -> tuple[SegmentationTask, str]:
    """The checkpoint's task at the precision validation scored it at (as eval.py); without a
    checkpoint, the pretrained `model` predicting `data`'s classes at the hardware's choice."""
    if cfg.get("ckpt_path"):
        ckpt = read_checkpoint(cfg.ckpt_path)
        task = load_task(
            cfg.ckpt_path, map_location=device, infer=infer, ckpt=ckpt, tool="predict.py"
        )  # type: ignore[arg-type]
        return task, checkpoint_precision(ckpt, device)
    if not cfg.get("model"):
        raise ConfigError(
            "ckpt_path= is missing: give a seglab checkpoint, model_uri= (a logged seglab model, "
            "runs:/<run id>/model or models:/<name>@champion), or a pretrained torchvision model "
            "(model=fcn model.weights=<torchvision name or file>)"
        )
    model = OmegaConf.to_container(cfg.model, resolve=True)
    data = OmegaConf.to_container(cfg.data, resolve=True)
    task = pretrained_task(model, data, infer).to(device)  # type: ignore[arg-type]
    return task, auto_precision(device)


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
    """Segment every input image; returns the mask paths. A summary CSV lists class shares.
    `model_uri=` (an MLflow model seglab logged) stands for `ckpt_path=`."""
    with checkpoint_from_model_uri(cfg):
        return _predict(cfg)


def _predict(cfg: DictConfig) -> list[Path]:
    if not 0 <= cfg.alpha <= 1:
        raise ConfigError(f"alpha={cfg.alpha}; expected a value in [0, 1]")
    inputs = find_inputs(str(cfg.input))
    infer = OmegaConf.to_container(cfg.infer, resolve=True) if cfg.get("infer") else None
    device = _device(cfg.accelerator)
    task, precision = _task_and_precision(cfg, infer, device)
    plugin = precision_plugin(cfg.precision or precision, device)
    task = plugin.convert_module(task)
    data = task.hparams["data"]
    channels = int(data.get("in_channels", 3))
    # The checkpoint's own validation pipeline: its val_transforms (resize, padding), normalised.
    view = ValidationView.from_data_config(data)
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
            stem = out_dir / rel.parent / rel.stem
            if task.predicts_instances:  # Mask R-CNN: instances JSON, overlay, painted class map
                found = detect_at_source(task, image, view, plugin)
                mask = write_instance_outputs(
                    task, data, stem, image, found, cfg.score_thresh, cfg.alpha
                )
                mode = "whole"
            else:
                logits, mode = predict_logits(task, image, view, plugin)
                mask = _write_outputs(cfg, data, stem, image, logits)
            counts = np.bincount(mask.ravel(), minlength=len(names))[: len(names)]
            height, width = mask.shape
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
