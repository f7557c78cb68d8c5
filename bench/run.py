"""`python -m bench` (or `make bench`): every benchmark, side by side, medians of repeats.

Writes bench/results.json and prints a Markdown table (key, value, goal, met?) for the README.
The platform is timed as users run it (`train.py` at its defaults, in its own process, with a
step-timing callback added) and compared with baselines timed in the same session.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hydra.utils import instantiate

from bench import sliding_window
from bench.config import ROOT, compose_train
from bench.timing import steady_seconds_per_step

RESULTS = ROOT / "bench" / "results.json"
# key → (goal as text, test). None values (not measured) are reported, never "met".
GOALS: dict[str, tuple[str, Any]] = {
    "platform_overhead_ratio": ("≤ 1.05", lambda v: v <= 1.05),
    "loader_to_model_throughput_ratio": ("≥ 2", lambda v: v >= 2),
    "metric_update_fraction": ("≤ 0.02", lambda v: v <= 0.02),
    "sliding_window_peak_mem_ratio": ("≤ 2.0", lambda v: v <= 2.0),
    "sliding_window_time_ratio": ("≤ 1.1", lambda v: v <= 1.1),
}


def _python(args: list[str], cwd: Path, timeout: float) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode:
        raise RuntimeError(
            f"{' '.join(args[:3])} failed:\n{proc.stdout[-2000:]}{proc.stderr[-4000:]}"
        )


def platform_seconds_per_step(tmp: Path, steps: int, warmup: int, overrides: list[str]) -> float:
    """train.py at its defaults for `steps` steps (validation cut to one batch), steady state."""
    times = tmp / "platform_steps.json"
    args = [
        str(ROOT / "train.py"), *overrides,
        "trainer.max_epochs=-1", f"trainer.max_steps={steps}", "trainer.limit_val_batches=1",
        f"logger.tracking_uri=sqlite:///{tmp / 'mlflow.db'}",
        "+callbacks.step_timer._target_=bench.timing.StepTimer", f"+callbacks.step_timer.path={times}",
        f"hydra.run.dir={tmp / 'run'}",
    ]  # fmt: skip
    _python(args, tmp, timeout=1800)
    return steady_seconds_per_step(json.loads(times.read_text())["ends"], warmup)


def plain_seconds_per_step(tmp: Path, steps: int, warmup: int, overrides: list[str]) -> float:
    times = tmp / "plain_steps.json"
    _python(["-m", "bench.plain_loop", str(times), str(steps), *overrides], tmp, timeout=1800)
    return steady_seconds_per_step(json.loads(times.read_text())["ends"], warmup)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from bench.loader import loader_images_per_second
    from bench.metric import metric_update_seconds

    overrides: list[str] = args.override
    cfg = compose_train(overrides)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()  # generate the default data once, outside every timing
    batch = int(cfg.data.batch_size)
    platform_s, plain_s, loader_ips = [], [], []
    for i in range(args.repeats):  # interleaved, so load drifts hit both sides alike
        with tempfile.TemporaryDirectory(prefix="seglab-bench-") as tmp:
            plain_s.append(plain_seconds_per_step(Path(tmp), args.steps, args.warmup, overrides))
            platform_s.append(
                platform_seconds_per_step(Path(tmp), args.steps, args.warmup, overrides)
            )
        loader_ips.append(loader_images_per_second(overrides, args.loader_batches))
        print(
            f"repeat {i + 1}/{args.repeats}: plain {plain_s[-1] * 1e3:.1f} ms/step, "
            f"train.py {platform_s[-1] * 1e3:.1f} ms/step, loader {loader_ips[-1]:.0f} img/s",
            file=sys.stderr,
        )
    platform_step, plain_step = statistics.median(platform_s), statistics.median(plain_s)
    model_ips = batch / plain_step
    metric_s = metric_update_seconds(overrides)
    results: dict[str, Any] = {
        "platform_overhead_ratio": platform_step / plain_step,
        "loader_to_model_throughput_ratio": statistics.median(loader_ips) / model_ips,
        "metric_update_fraction": metric_s / platform_step,
        "sliding_window_peak_mem_ratio": None,
        "sliding_window_time_ratio": None,
    }
    details: dict[str, Any] = {
        "train_py_s_per_step": platform_s, "plain_loop_s_per_step": plain_s,
        "loader_images_per_s": loader_ips, "model_images_per_s": model_ips,
        "metric_update_s": metric_s, "batch_size": batch, "steps": args.steps,
        "warmup_steps": args.warmup, "precision": str(cfg.trainer.precision),
        "overrides": overrides,
    }  # fmt: skip
    if args.skip_sliding:
        details["sliding_window"] = "skipped (--skip-sliding)"
    elif sliding_window.available():
        with tempfile.TemporaryDirectory(prefix="seglab-bench-") as tmp:
            out = Path(tmp) / "sliding.json"
            sizes = [str(args.sliding_size), str(args.sliding_window), str(args.sliding_stride)]
            _python(["-m", "bench.sliding_window", str(out), *sizes], Path(tmp), timeout=3600)
            sliding = json.loads(out.read_text())
        details["sliding_window"] = sliding.pop("details")
        results.update(sliding)
    else:
        details["sliding_window"] = f"{sliding_window.MODULE} not found: not measured"
    return {
        **results,
        "details": details,
        "machine": {
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "python": platform.python_version(), "torch": __import__("torch").__version__,
        },
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }  # fmt: skip


def markdown_table(results: dict[str, Any]) -> str:
    """| key | value | goal | met? | rows, in GOALS order."""
    rows = ["| key | value | goal | met? |", "|---|---|---|---|"]
    for key, (goal, test) in GOALS.items():
        value = results.get(key)
        shown = "null (not measured)" if value is None else f"{value:.3f}"
        met = "—" if value is None else ("yes" if test(value) else "**no**")
        rows.append(f"| `{key}` | {shown} | {goal} | {met} |")
    return "\n".join(rows)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--repeats", type=int, default=3, help="runs per side; medians reported")
    parser.add_argument("--steps", type=int, default=60, help="training steps timed per run")
    parser.add_argument("--warmup", type=int, default=10, help="first steps left out (start-up)")
    parser.add_argument("--loader-batches", type=int, default=40)
    parser.add_argument("--sliding-size", type=int, default=5000, help="image side, pixels")
    parser.add_argument("--sliding-window", type=int, default=512)
    parser.add_argument("--sliding-stride", type=int, default=384)
    parser.add_argument("--skip-sliding", action="store_true", help="leave the sliding keys null")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--override", action="append", default=[], help="a train.py override (repeatable)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = run(args)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(markdown_table(results))
    print(f"\nwritten to {args.out}", file=sys.stderr)
    return 0
