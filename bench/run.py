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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hydra.utils import instantiate

from bench import pipeline, sliding_window
from bench.config import ROOT, compose_train
from bench.device import BenchDevice, pick_device
from bench.timing import epoch_seconds, steady_seconds_per_step

RESULTS = ROOT / "bench" / "results.json"
# The whole-epoch runs' model: train.py's U-Net with its encoder's first three stages and a
# narrower decoder, so a plain step takes 20-60 ms on a CPU as on a GPU (the full U-Net's took
# 106-119 ms on a 2-core CPU at batch 2-4 and 32-64 px alike: AdamW and per-layer costs).
SMALL_STEP = ("+model.encoder_depth=3", "+model.decoder_channels=[64,32,16]")
# key → (goal as text, test). None values (not measured) are reported, never "met".
GOALS: dict[str, tuple[str, Any]] = {
    "platform_overhead_ratio": ("≤ 1.05", lambda v: v <= 1.05),
    "loader_to_model_throughput_ratio": ("≥ 2", lambda v: v >= 2),
    "metric_update_fraction": ("≤ 0.02", lambda v: v <= 0.02),
    "sliding_window_peak_mem_ratio": ("≤ 2.0", lambda v: v <= 2.0),
    "sliding_window_time_ratio": ("≤ 1.1", lambda v: v <= 1.1),
    "epoch_overhead_ratio": ("≤ 1.05", lambda v: v <= 1.05),
    "extra_ms_per_step": ("(info)", lambda v: True),
    "startup_ratio": ("≤ 2", lambda v: v <= 2),
    "pipeline_decode_ratio_cityscapes": ("≤ 1.5", lambda v: v <= 1.5),
    "pipeline_decode_ratio_inria": ("≤ 1.5", lambda v: v <= 1.5),
}


def _python(args: list[str], cwd: Path, timeout: float) -> float:
    """Run `python *args` with the checkout on the path; its wall time in seconds."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    wall = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(
            f"{' '.join(args[:3])} failed:\n{proc.stdout[-2000:]}{proc.stderr[-4000:]}"
        )
    return wall


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


def _train_py(tmp: Path, overrides: list[str], run: str = "run") -> list[str]:
    return [
        str(ROOT / "train.py"), *overrides, f"logger.tracking_uri=sqlite:///{tmp / 'mlflow.db'}",
        f"hydra.run.dir={tmp / run}",
    ]  # fmt: skip


def alternating_pairs(
    plain: Callable[[Path], float], platform: Callable[[Path], float], repeats: int
) -> Iterator[tuple[float, float]]:
    """(plain, platform) per pair, each side in a fresh temporary directory, run back to back in
    alternating order (plain first, then train.py first), so a slow spell of a shared machine
    (±10 % over minutes on a cloud VM) hits both sides of a pair alike: report the median of
    the pairs' ratios."""
    for i in range(repeats):
        timed: dict[str, float] = {}
        sides = [("plain", plain), ("platform", platform)]
        for side, measure in sides if i % 2 == 0 else sides[::-1]:
            with tempfile.TemporaryDirectory(prefix="seglab-bench-") as tmp:
                timed[side] = measure(Path(tmp))
        yield timed["plain"], timed["platform"]


def epoch_comparison(args: argparse.Namespace, overrides: list[str]) -> dict[str, Any]:
    """Whole epochs (train + val + checkpoints) of train.py vs bench.plain_epochs, small steps.

    The model and batch of `--epoch-override`/`--epoch-batch` (a plain step of 20-60 ms, a GPU's
    regime). Per run the median epoch (the first left out); the runs in pairs, back to back in
    alternating order like the steady-state pairs, and the median of the pairs' ratios.
    """
    sized = [*overrides, *args.epoch_override, f"data.batch_size={args.epoch_batch}"]
    epochs, steps = str(args.epochs), str(args.epoch_steps)
    timer = [
        f"trainer.max_epochs={epochs}", f"trainer.limit_train_batches={steps}",
        "+callbacks.epoch_timer._target_=bench.timing.EpochTimer",
    ]  # fmt: skip
    platform_s, plain_s, plain_step_ms = [], [], []

    def plain(tmp: Path) -> float:
        out = tmp / "plain_epochs.json"
        _python(["-m", "bench.plain_epochs", str(out), epochs, steps, *sized], tmp, 1800)
        timed = json.loads(out.read_text())
        pairs = zip(timed["starts"], timed["train_ends"], strict=False)  # starts: one more
        training = [end - start for start, end in pairs]
        plain_step_ms.append(1e3 * statistics.median(training[1:]) / args.epoch_steps)
        return epoch_seconds(timed["starts"])

    def platform(tmp: Path) -> float:
        out = tmp / "epochs.json"
        _python(_train_py(tmp, [*sized, *timer, f"+callbacks.epoch_timer.path={out}"]), tmp, 1800)
        return epoch_seconds(json.loads(out.read_text())["starts"])

    for i, (plain_epoch, platform_epoch) in enumerate(
        alternating_pairs(plain, platform, args.epoch_repeats)
    ):
        plain_s.append(plain_epoch)
        platform_s.append(platform_epoch)
        print(
            f"epochs {i + 1}/{args.epoch_repeats}: plain {plain_s[-1]:.2f} s "
            f"({plain_step_ms[-1]:.0f} ms/step), train.py {platform_s[-1]:.2f} s per epoch",
            file=sys.stderr,
        )
    pair_ratios = [a / b for a, b in zip(platform_s, plain_s, strict=True)]
    extra_ms = [1e3 * (a - b) / args.epoch_steps for a, b in zip(platform_s, plain_s, strict=True)]
    return {
        "epoch_overhead_ratio": statistics.median(pair_ratios),
        "extra_ms_per_step": statistics.median(extra_ms),
        "details": {
            "train_py_s_per_epoch": platform_s, "plain_s_per_epoch": plain_s,
            "pair_ratios": pair_ratios, "plain_train_ms_per_step": plain_step_ms,
            "batch_size": args.epoch_batch, "epochs": args.epochs, "steps": args.epoch_steps,
            "overrides": args.epoch_override,
        },
    }  # fmt: skip


def startup_comparison(args: argparse.Namespace, overrides: list[str]) -> dict[str, Any]:
    """Wall time of the smallest complete train.py run (1 train + 1 val batch) ÷ a plain script
    importing torch, Lightning and smp and taking one step (bench.one_step); best of repeats."""
    smallest = [
        *overrides, "trainer.max_epochs=1", "trainer.limit_train_batches=1",
        "trainer.limit_val_batches=1",
    ]  # fmt: skip
    platform_s, plain_s = [], []
    # One MLflow store for all repeats, as a user's runs share one: the first run's store
    # creation (MLflow's schema migrations, seconds) is paid once, and best-of leaves it out.
    with tempfile.TemporaryDirectory(prefix="seglab-bench-") as tmp:
        for i in range(args.repeats):
            plain_s.append(_python(["-m", "bench.one_step"], Path(tmp), 600))
            train_py = _train_py(Path(tmp), smallest, run=f"run{i}")
            platform_s.append(_python(train_py, Path(tmp), 600))
    return {
        "startup_ratio": min(platform_s) / min(plain_s),
        "details": {"train_py_s": platform_s, "one_step_s": plain_s},
    }


def pipeline_comparison(args: argparse.Namespace) -> dict[str, Any]:
    """Real-resolution pipelines vs bare decode (bench.pipeline), per worker."""
    city = pipeline.cityscapes(args.pipeline_samples, args.repeats)
    inria = pipeline.inria(args.pipeline_samples, args.repeats)
    return {
        "pipeline_decode_ratio_cityscapes": city.pop("ratio"),
        "pipeline_decode_ratio_inria": inria.pop("ratio"),
        "details": {"cityscapes": city, "inria": inria},
    }


def mask_rcnn_on(device: BenchDevice, args: argparse.Namespace) -> dict[str, Any]:
    """Mask R-CNN v2 step time and peak memory at a real size (GPU only: hours on a CPU)."""
    with tempfile.TemporaryDirectory(prefix="seglab-bench-") as tmp:
        out = Path(tmp) / "mask_rcnn.json"
        size = [str(args.mask_rcnn_height), str(args.mask_rcnn_width), str(args.mask_rcnn_batch)]
        _python(["-m", "bench.mask_rcnn", str(out), *size, "10", device.kind], Path(tmp), 1800)
        return json.loads(out.read_text())


def run(args: argparse.Namespace) -> dict[str, Any]:
    from bench.loader import loader_images_per_second
    from bench.metric import metric_update_seconds

    device: BenchDevice = args.device
    overrides: list[str] = [*device.overrides, *args.override]
    step_overrides = (
        [*overrides, f"data.batch_size={args.step_batch}"] if args.step_batch else overrides
    )
    cfg = compose_train(step_overrides)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()  # generate the default data once, outside every timing
    batch = int(cfg.data.batch_size)
    platform_s, plain_s, loader_ips = [], [], []
    pairs = alternating_pairs(
        lambda tmp: plain_seconds_per_step(tmp, args.steps, args.warmup, step_overrides),
        lambda tmp: platform_seconds_per_step(tmp, args.steps, args.warmup, step_overrides),
        args.step_repeats,
    )
    for i, (plain_step_s, platform_step_s) in enumerate(pairs):
        plain_s.append(plain_step_s)
        platform_s.append(platform_step_s)
        loader_ips.append(loader_images_per_second(step_overrides, args.loader_batches))
        print(
            f"pair {i + 1}/{args.step_repeats}: plain {plain_s[-1] * 1e3:.1f} ms/step, "
            f"train.py {platform_s[-1] * 1e3:.1f} ms/step, loader {loader_ips[-1]:.0f} img/s",
            file=sys.stderr,
        )
    pair_ratios = [a / b for a, b in zip(platform_s, plain_s, strict=True)]
    platform_step, plain_step = statistics.median(platform_s), statistics.median(plain_s)
    model_ips = batch / plain_step
    metric_s = metric_update_seconds(step_overrides)
    results: dict[str, Any] = {
        "platform_overhead_ratio": statistics.median(pair_ratios),
        "loader_to_model_throughput_ratio": statistics.median(loader_ips) / model_ips,
        "metric_update_fraction": metric_s / platform_step,
        "sliding_window_peak_mem_ratio": None,
        "sliding_window_time_ratio": None,
        "epoch_overhead_ratio": None,
        "extra_ms_per_step": None,
        "startup_ratio": None,
        "pipeline_decode_ratio_cityscapes": None,
        "pipeline_decode_ratio_inria": None,
    }
    details: dict[str, Any] = {
        "train_py_s_per_step": platform_s, "plain_loop_s_per_step": plain_s,
        "pair_ratios": pair_ratios,
        "loader_images_per_s": loader_ips, "model_images_per_s": model_ips,
        "metric_update_s": metric_s, "batch_size": batch, "steps": args.steps,
        "warmup_steps": args.warmup, "precision": str(cfg.trainer.precision),
        "overrides": overrides, "device": device.kind,
    }  # fmt: skip
    for name, measure in (
        ("epochs", lambda: epoch_comparison(args, overrides)),
        ("startup", lambda: startup_comparison(args, overrides)),
        ("pipelines", lambda: None if args.skip_pipelines else pipeline_comparison(args)),
    ):
        found = measure()
        if found is None:
            details[name] = f"skipped (--skip-{name})"
            continue
        details[name] = found.pop("details")
        results.update(found)
    if device.cuda:
        details["mask_rcnn"] = mask_rcnn_on(device, args)
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
        if goal == "(info)":
            met = "—"
        rows.append(f"| `{key}` | {shown} | {goal} | {met} |")
    return "\n".join(rows)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--repeats", type=int, default=3, help="runs per side; medians reported")
    parser.add_argument("--steps", type=int, default=120, help="training steps timed per run")
    parser.add_argument("--warmup", type=int, default=20, help="first steps left out (start-up)")
    parser.add_argument(
        "--step-repeats", type=int, default=5, help="pairs of steady-state runs; median ratio"
    )
    parser.add_argument("--loader-batches", type=int, default=40)
    parser.add_argument("--sliding-size", type=int, default=5000, help="image side, pixels")
    parser.add_argument("--sliding-window", type=int, default=512)
    parser.add_argument("--sliding-stride", type=int, default=384)
    parser.add_argument("--skip-sliding", action="store_true", help="leave the sliding keys null")
    parser.add_argument(
        "--step-batch", type=int, default=4, help="batch of the steady-state step (≈100 ms here)"
    )
    parser.add_argument("--epochs", type=int, default=6, help="epochs per whole-epoch run")
    parser.add_argument(
        "--epoch-repeats", type=int, default=5, help="pairs of whole-epoch runs; median ratio"
    )
    parser.add_argument("--epoch-steps", type=int, default=40, help="training steps per epoch")
    parser.add_argument("--epoch-batch", type=int, default=2, help="batch of the epoch runs")
    parser.add_argument(
        "--epoch-override",
        action="append",
        default=None,
        help=f"model override of the epoch runs (repeatable; default: {' '.join(SMALL_STEP)})",
    )
    parser.add_argument("--pipeline-samples", type=int, default=24, help="samples per pipeline")
    parser.add_argument("--skip-pipelines", action="store_true", help="leave the pipelines null")
    parser.add_argument("--mask-rcnn-height", type=int, default=1024)
    parser.add_argument("--mask-rcnn-width", type=int, default=2048)
    parser.add_argument("--mask-rcnn-batch", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="default: results(_gpu).json")
    parser.add_argument(
        "--override", action="append", default=[], help="a train.py override (repeatable)"
    )
    args = parser.parse_args(argv)
    if args.epoch_override is None:
        args.epoch_override = list(SMALL_STEP)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.device = pick_device()
    args.out = args.out or args.device.results
    results = run(args)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(markdown_table(results))
    print(f"\nwritten to {args.out}", file=sys.stderr)
    return 0
