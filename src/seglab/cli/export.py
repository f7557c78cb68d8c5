"""`python export.py ckpt_path=... format=onnx|torchscript`: a servable model plus its spec."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig
from rich.console import Console

from seglab.errors import report_user_errors
from seglab.export import export_checkpoint


@report_user_errors
def export(cfg: DictConfig) -> tuple[Path, Path]:
    """Export, check parity with the checkpoint (when asked), print where it went."""
    size = list(cfg.example_size) if cfg.example_size else None
    path, info = export_checkpoint(
        cfg.ckpt_path, cfg.format, cfg.output, cfg.normalize, size, cfg.opset, cfg.check
    )
    Console().print(f"exported {cfg.format}: [bold]{path}[/] (what it expects: {info})")
    return path, info
