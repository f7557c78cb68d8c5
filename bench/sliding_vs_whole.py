"""Sliding-window vs whole-image inference: peak memory and time on one large image.

`python bench/sliding_vs_whole.py [--side 2048] [--window 512]` runs each mode in a fresh
subprocess (so peaks do not mix) with an untrained U-Net (resnet18, 6 classes, fp32, CPU or
CUDA) and prints one JSON line per mode plus the ratios. Peak = RSS sampled every 5 ms (CPU) or
torch.cuda.max_memory_allocated (CUDA), above the RSS with the model and image loaded.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

PROBE = """
import json, sys, threading, time
import psutil, torch
from seglab.inference import InferSettings, infer_logits
from seglab.tasks import SemanticSegmentationTask
mode, side, window, device = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
data = {"name": "bench", "num_classes": 6, "class_names": list("abcdef"), "ignore_index": 255,
        "palette": [[0, 0, 0]] * 6, "in_channels": 3, "mean": [0.5] * 3, "std": [0.25] * 3}
model = {"_target_": "seglab.models.build_smp_model", "arch": "unet", "encoder": "resnet18",
         "encoder_weights": None, "in_channels": 3, "num_classes": 6}
loss = {"_target_": "torch.nn.CrossEntropyLoss"}
task = SemanticSegmentationTask(model, loss, {}, {}, data).eval().to(device)
settings = InferSettings.from_config({"mode": mode, "window": window, "window_batch": 4}, data)
image = torch.randn(1, 3, side, side, device=device)
infer_logits(task, image[..., :window, :window], 6, settings)  # warm-up
process, peak, done = psutil.Process(), [0], threading.Event()
def sample():
    while not done.is_set():
        peak[0] = max(peak[0], process.memory_info().rss)
        time.sleep(0.005)
if device == "cuda":
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
before = process.memory_info().rss
thread = threading.Thread(target=sample); thread.start()
start = time.perf_counter()
logits = infer_logits(task, image, 6, settings)
if device == "cuda":
    torch.cuda.synchronize()
seconds = time.perf_counter() - start
done.set(); thread.join()
extra = (torch.cuda.max_memory_allocated() - base if device == "cuda"
         else max(peak[0], process.memory_info().rss) - before)
print(json.dumps({"mode": mode, "side": side, "window": window, "device": device,
                  "seconds": round(seconds, 2), "extra_peak_mib": round(extra / 2**20),
                  "logits_mib": round(logits.nbytes / 2**20)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=2048)
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--device", default="cuda" if _cuda() else "cpu")
    args = parser.parse_args()
    results = {}
    for mode in ("whole", "slide"):
        cmd = [sys.executable, "-c", PROBE, mode, str(args.side), str(args.window), args.device]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        results[mode] = json.loads(out.strip().splitlines()[-1])
        print(json.dumps(results[mode]))
    whole, slide = results["whole"], results["slide"]
    print(json.dumps({
        "memory_ratio_slide_over_whole": round(slide["extra_peak_mib"] / whole["extra_peak_mib"], 3),
        "time_ratio_slide_over_whole": round(slide["seconds"] / whole["seconds"], 2),
    }))  # fmt: skip


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    main()
