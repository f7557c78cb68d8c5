"""Sliding-window inference on one large image: memory and time against what it must cost.

- peak memory ÷ (image + output logits): what the process grew by while tiling, over the two
  tensors that cannot be avoided (goal ≤ 2: window buffers and the blending weights are small);
- wall time ÷ the sum of the window forwards: the tiling, blending and copying around the
  network (goal ≤ 1.1).

Runs in its own process (`python -m bench.sliding_window OUT.json SIZE WINDOW STRIDE`) so the
peak resident size (`ru_maxrss`) belongs to this measurement alone. Needs
`seglab.inference.sliding.slide_inference`; without it the keys stay null.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import torch

from bench.config import compose_train

MODULE = "seglab.inference.sliding"


def available() -> bool:
    """Whether the sliding-window code has landed."""
    try:
        return importlib.util.find_spec(MODULE) is not None
    except ModuleNotFoundError:
        return False


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _reset_peak_rss() -> None:
    """Restart the peak at the current size (Linux ≥ 4.0), so the peak is this measurement's
    even in a process that was larger before (a test worker). The kernel updates its peak
    lazily: memory returned by madvise could leave it below a later baseline."""
    with contextlib.suppress(OSError):  # elsewhere the bench's own process keeps it meaningful
        Path("/proc/self/clear_refs").write_text("5")


def measure(size: int, window: int, stride: int, window_batch: int = 4) -> dict[str, Any]:
    """Tile a random `size`² image with train.py's default model; ratios and raw figures."""
    from seglab.inference.sliding import slide_inference

    cfg = compose_train()
    model_cfg = {k: v for k, v in cfg.model.items() if k not in ("task", "name", "channels_last")}
    from hydra.utils import instantiate

    model = instantiate(model_cfg).eval()
    num_classes = int(cfg.data.num_classes)
    forward_seconds = 0.0

    def forward(batch: torch.Tensor) -> torch.Tensor:
        nonlocal forward_seconds
        start = time.perf_counter()
        out = model(batch)
        forward_seconds += time.perf_counter() - start
        return out

    # Baseline before the warm-up, so the network's activations count as the tiling's memory.
    _reset_peak_rss()
    baseline = psutil.Process().memory_info().rss
    with torch.inference_mode():
        forward(torch.rand(window_batch, 3, window, window))  # warm-up: oneDNN primitives
        forward_seconds = 0.0
        image = torch.rand(3, size, size)
        start = time.perf_counter()
        logits = slide_inference(
            forward, image, num_classes, window, stride, blend="gaussian", window_batch=window_batch
        )
        wall = time.perf_counter() - start
    needed = image.numel() * image.element_size() + logits.numel() * logits.element_size()
    grown = _peak_rss_bytes() - baseline
    return {
        "sliding_window_peak_mem_ratio": grown / needed,
        "sliding_window_time_ratio": wall / forward_seconds,
        "details": {
            "size": size, "window": window, "stride": stride, "window_batch": window_batch,
            "wall_s": wall, "forward_s": forward_seconds,
            "peak_growth_mb": grown / 2**20, "image_plus_logits_mb": needed / 2**20,
        },
    }  # fmt: skip


def main(argv: list[str]) -> None:
    out, size, window, stride = Path(argv[0]), int(argv[1]), int(argv[2]), int(argv[3])
    out.write_text(json.dumps(measure(size, window, stride)))


if __name__ == "__main__":
    main(sys.argv[1:])
