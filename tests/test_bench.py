"""The benchmark code runs end to end at toy sizes (no timing is asserted: that is bench's job)."""

from __future__ import annotations

import json
import statistics
import sys
import types
from pathlib import Path

import pytest
import torch

from bench import mask_rcnn, pipeline, sliding_window
from bench.device import pick_device
from bench.run import SMALL_STEP, main, markdown_table
from bench.timing import epoch_seconds, steady_seconds_per_step
from tests.conftest import TINY_DATA

KEYS = (
    "platform_overhead_ratio", "loader_to_model_throughput_ratio", "metric_update_fraction",
    "sliding_window_peak_mem_ratio", "sliding_window_time_ratio", "epoch_overhead_ratio",
    "extra_ms_per_step", "startup_ratio", "pipeline_decode_ratio_cityscapes",
    "pipeline_decode_ratio_inria",
)  # fmt: skip


@pytest.mark.slow
def test_bench_runs_end_to_end_at_toy_size(
    tiny_synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results.json"
    overrides = [f"--override={o}" for o in [*TINY_DATA, f"data.root={tiny_synthetic_root}"]]
    args = ["--repeats=1", "--steps=4", "--warmup=1", "--loader-batches=2", f"--out={out}"]
    args.append("--step-repeats=2")  # both orders of a steady-state pair
    args.append("--skip-sliding")  # its harness has its own test below; one process less here
    # the pipelines have their own test below; epochs of two steps, the data's own batch size
    args += ["--skip-pipelines", "--epochs=2", "--epoch-steps=2", "--epoch-batch=2"]
    args.append("--epoch-repeats=1")
    args.append("--step-batch=0")
    assert (
        main([*args, "--sliding-size=96", "--sliding-window=64", "--sliding-stride=48", *overrides])
        == 0
    )
    results = json.loads(out.read_text())
    for key in (*KEYS[:3], "epoch_overhead_ratio", "startup_ratio"):
        assert isinstance(results[key], float) and results[key] > 0, key
    assert isinstance(results["extra_ms_per_step"], float)
    assert results["sliding_window_time_ratio"] is None
    assert results["pipeline_decode_ratio_inria"] is None
    steady = results["details"]
    pairs = zip(steady["train_py_s_per_step"], steady["plain_loop_s_per_step"], strict=True)
    ratios = [platform / plain for platform, plain in pairs]
    assert steady["pair_ratios"] == pytest.approx(ratios) and len(ratios) == 2
    assert results["platform_overhead_ratio"] == pytest.approx(statistics.median(ratios))
    epochs = results["details"]["epochs"]
    assert len(epochs["train_py_s_per_epoch"]) == len(epochs["plain_s_per_epoch"]) == 1
    assert results["epoch_overhead_ratio"] == pytest.approx(
        epochs["train_py_s_per_epoch"][0] / epochs["plain_s_per_epoch"][0]
    )
    assert epochs["overrides"] == list(SMALL_STEP)  # the default small-step U-Net
    assert results["details"]["device"] == "cpu"
    table = capsys.readouterr().out
    assert table.startswith("| key | value | goal | met? |")
    assert all(f"`{key}`" in table for key in KEYS)


def _stand_in_slide_inference(forward, image, num_classes, window, stride, blend="gaussian",
                              window_batch=4):  # fmt: skip
    """A minimal sliding window with the agreed interface (mean blending), for the harness."""
    _, height, width = image.shape
    out = torch.zeros(num_classes, height, width)
    hits = torch.zeros(1, height, width)
    starts = lambda n: sorted({*range(0, n - window, stride), n - window})  # noqa: E731
    boxes = [(y, x) for y in starts(height) for x in starts(width)]
    for i in range(0, len(boxes), window_batch):
        chunk = boxes[i : i + window_batch]
        logits = forward(torch.stack([image[:, y : y + window, x : x + window] for y, x in chunk]))
        for (y, x), tile in zip(chunk, logits, strict=True):
            out[:, y : y + window, x : x + window] += tile
            hits[:, y : y + window, x : x + window] += 1
    return out / hits


def test_sliding_window_harness_measures_a_stand_in(monkeypatch: pytest.MonkeyPatch) -> None:
    if not sliding_window.available():
        package = types.ModuleType("seglab.inference")
        module = types.ModuleType("seglab.inference.sliding")
        module.slide_inference = _stand_in_slide_inference
        monkeypatch.setitem(sys.modules, "seglab.inference", package)
        monkeypatch.setitem(sys.modules, "seglab.inference.sliding", module)
    result = sliding_window.measure(size=96, window=64, stride=48, window_batch=2)
    assert result["sliding_window_time_ratio"] >= 1.0
    assert result["sliding_window_peak_mem_ratio"] > 0
    assert result["details"]["forward_s"] > 0


def test_steady_state_leaves_out_warmup_and_table_marks_goals() -> None:
    assert steady_seconds_per_step([0.0, 5.0, 6.0, 7.0, 8.5], warmup=1) == pytest.approx(7 / 6)
    with pytest.raises(ValueError, match="need more than"):
        steady_seconds_per_step([0.0, 1.0], warmup=1)
    table = markdown_table({"platform_overhead_ratio": 1.2, "metric_update_fraction": 0.01})
    assert "| `platform_overhead_ratio` | 1.200 | ≤ 1.05 | **no** |" in table
    assert "| `metric_update_fraction` | 0.010 | ≤ 0.02 | yes |" in table
    assert "| `sliding_window_time_ratio` | null (not measured) | ≤ 1.1 | — |" in table


def test_epoch_time_is_the_median_whole_epoch_after_the_first() -> None:
    assert epoch_seconds([0.0, 9.0, 11.0, 14.0, 16.5]) == pytest.approx(2.5)
    with pytest.raises(ValueError, match="epoch starts"):
        epoch_seconds([0.0, 9.0])


def test_pipelines_against_bare_decode_at_toy_size(tmp_path: Path) -> None:
    city = pipeline.cityscapes(samples=2, repeats=1, work=tmp_path, size=(64, 128))
    assert city["ratio"] > 0 and city["fastest_decoder"] in ("cv2", "PIL")
    assert set(city["decode_images_per_s"]) == {"cv2", "PIL"}
    inria = pipeline.inria(samples=2, repeats=1, work=tmp_path, side=96, crop=32)
    assert inria["ratio"] > 0 and inria["fastest_decoder"] == "tifffile"
    # generated once, reused: the second call finds the files
    made = sorted(p.name for p in tmp_path.rglob("*.png"))
    pipeline.make_cityscapes(tmp_path / "cityscapes-64x128", 64, 128)
    assert sorted(p.name for p in tmp_path.rglob("*.png")) == made


def test_cuda_path_is_configured_without_a_gpu() -> None:
    """No GPU here: the CUDA choices are checked as configuration, the timing code on CPU."""
    gpu = pick_device(cuda_available=True, bf16=True)
    assert gpu.cuda and gpu.results.name == "results_gpu.json"
    assert "trainer.precision=bf16-mixed" in gpu.overrides
    assert "trainer.accelerator=gpu" in gpu.overrides
    assert "trainer.precision=16-mixed" in pick_device(cuda_available=True, bf16=False).overrides
    cpu = pick_device(cuda_available=False)
    assert not cpu.cuda and cpu.overrides == [] and cpu.results.name == "results.json"
    step = mask_rcnn.measure(height=64, width=96, batch=1, steps=1, device="cpu")
    assert step["mask_rcnn_v2_s_per_step"] > 0 and step["mask_rcnn_v2_peak_mem_mb"] is None
