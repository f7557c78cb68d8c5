"""Where `make bench` runs: the CPU here, a CUDA GPU when one is present.

On CUDA the same comparisons run with automatic mixed precision and channels_last (the model
configs default to channels_last already), the results go to `bench/results_gpu.json`, and the
Mask R-CNN v2 step is timed too. Kept in one place so the choice is testable on a CPU machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from bench.config import ROOT


@dataclass(frozen=True)
class BenchDevice:
    """The device the benchmark times, and what that changes in the comparisons."""

    kind: str  # "cpu" or "cuda"
    overrides: list[str] = field(default_factory=list)  # added to every train.py / baseline run
    results: Path = ROOT / "bench" / "results.json"

    @property
    def cuda(self) -> bool:
        return self.kind == "cuda"


def pick_device(cuda_available: bool | None = None, bf16: bool | None = None) -> BenchDevice:
    """CUDA when present: AMP (bf16 where the GPU has it, else fp16), results_gpu.json."""
    if cuda_available is None:
        cuda_available = torch.cuda.is_available()
    if not cuda_available:
        return BenchDevice("cpu")
    if bf16 is None:
        bf16 = torch.cuda.is_bf16_supported()
    precision = "bf16-mixed" if bf16 else "16-mixed"
    overrides = ["trainer.accelerator=gpu", "trainer.devices=1", f"trainer.precision={precision}"]
    return BenchDevice("cuda", overrides, ROOT / "bench" / "results_gpu.json")


def synchronize(device: str | torch.device) -> None:
    """Wait for queued kernels, so a timestamp means the work before it is done (no-op on CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def torch_device(accelerator: str) -> torch.device:
    """The torch device a train.py `trainer.accelerator` value trains on (one device)."""
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")
