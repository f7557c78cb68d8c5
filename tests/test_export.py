"""Exported models (ONNX via onnxruntime, TorchScript via torch.jit) reproduce the checkpoint."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from seglab.errors import SeglabError
from seglab.export import check_parity, export_checkpoint
from seglab.tasks.checkpoint import load_task
from tests.conftest import run_entry_point


def _reference(ckpt: Path, image: torch.Tensor, normalize: bool) -> np.ndarray:
    task = load_task(ckpt)
    data = task.hparams["data"]
    mean = torch.tensor(data["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(data["std"]).view(1, -1, 1, 1)
    with torch.no_grad():
        return task((image / 255 - mean) / std if normalize else image).numpy()


def _image(batch: int, height: int, width: int) -> torch.Tensor:
    return torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(3)) * 255


@pytest.mark.slow
def test_onnx_export_matches_the_checkpoint(tiny_checkpoint: dict, tmp_path: Path) -> None:
    import onnxruntime

    out = tmp_path / "model.onnx"
    args = [f"ckpt_path={tiny_checkpoint['ckpt']}", "format=onnx", f"output={out}"]
    proc = run_entry_point("export.py", args, tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    info = json.loads((tmp_path / "model.onnx.json").read_text())
    assert info["normalize_inside"] and info["class_names"][1] == "disc"
    assert info["max_abs_diff"] >= 0  # the CLI checked parity itself
    assert info["input"]["min_side"] == 1
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    # Batch, height and width unlike the tracing example (1×64×64); 12 rows: thinner than the
    # pad to 32, so the graph must replicate as the task does (reflection cannot reach 20 rows).
    for batch, height, width in ((2, 70, 90), (1, 12, 70), (1, 20, 70)):
        image = _image(batch, height, width)
        (logits,) = session.run(None, {"image": image.numpy()})
        expected = _reference(tiny_checkpoint["ckpt"], image, normalize=True)
        assert logits.shape == (batch, 6, height, width)
        np.testing.assert_allclose(logits, expected, atol=1e-4 * (np.abs(expected).max() + 1))


@pytest.fixture(scope="module")
def torchscript_model(tiny_checkpoint: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ts") / "m.pt"
    path, info_path = export_checkpoint(
        tiny_checkpoint["ckpt"], "torchscript", out, normalize=False, check=False
    )
    assert json.loads(info_path.read_text())["input"]["expects"].startswith("(image / 255 - mean)")
    return path


def test_torchscript_export_without_normalisation(tiny_checkpoint: dict, torchscript_model) -> None:
    image = (_image(1, 96, 33) / 255 - 0.45) / 0.225
    with warnings.catch_warnings():  # torch.jit is deprecated, still the TorchScript loader
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(torchscript_model))
    with torch.no_grad():
        logits = module(image).numpy()
    expected = _reference(tiny_checkpoint["ckpt"], image, normalize=False)
    np.testing.assert_allclose(logits, expected, atol=1e-4 * (np.abs(expected).max() + 1))


@pytest.mark.parametrize("size", [(20, 70), (12, 70), (70, 5), (1, 1)])
def test_task_and_exported_model_pad_thin_images_alike(
    tiny_checkpoint: dict, torchscript_model, size: tuple[int, int]
) -> None:
    """One stride padding: the task's forward and the exported wrapper (eager and TorchScript)
    give the same logits on images thinner than the stride, where reflection cannot pad."""
    from seglab.export import ExportableSegmenter

    task = load_task(tiny_checkpoint["ckpt"])
    data = task.hparams["data"]
    wrapper = ExportableSegmenter(task.net, data["mean"], data["std"], normalize=False).eval()
    image = (_image(2, *size) / 255 - 0.45) / 0.225
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(torchscript_model))
    with torch.no_grad():
        expected = task(image)
        eager, scripted = wrapper(image), module(image)
    assert expected.shape == (2, 6, *size)
    tolerance = 1e-4 * (float(expected.abs().max()) + 1)  # float32 kernels differ in order
    torch.testing.assert_close(eager, expected, rtol=0, atol=tolerance)
    torch.testing.assert_close(scripted, expected, rtol=0, atol=tolerance)


@pytest.mark.parametrize("height", [1, 16, 17, 33, 70])
@pytest.mark.parametrize("width", [1, 12, 64, 90])
def test_pad_to_stride_reflects_unless_the_image_is_too_thin(height: int, width: int) -> None:
    """The rule, as F.pad would apply it: reflect when both pads are shorter than their sides,
    else replicate; TorchScript runs the same function to the same result."""
    import torch.nn.functional as F

    from seglab.inference.padding import pad_to_stride

    image = torch.rand(2, 3, height, width, generator=torch.Generator().manual_seed(0))
    pad_h, pad_w = (-height) % 32, (-width) % 32
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    expected = F.pad(image, (0, pad_w, 0, pad_h), mode=mode)
    torch.testing.assert_close(pad_to_stride(image), expected, rtol=0, atol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.script(pad_to_stride)
    torch.testing.assert_close(scripted(image, 32), expected, rtol=0, atol=0)


def test_parity_check_catches_a_model_that_differs(
    tiny_checkpoint: dict, torchscript_model
) -> None:
    from seglab.export import ExportableSegmenter

    task = load_task(tiny_checkpoint["ckpt"])
    data = task.hparams["data"]
    wrapper = ExportableSegmenter(task.net, data["mean"], data["std"], normalize=False)
    example = (_image(1, 64, 64) / 255 - 0.45) / 0.225
    check_parity(task, wrapper, torchscript_model, "torchscript", example)  # the same model: passes
    with torch.no_grad():
        task.net.segmentation_head[0].bias += 1.0  # what a stale or wrong export would look like
    with pytest.raises(SeglabError, match="does not reproduce the checkpoint"):
        check_parity(task, wrapper, torchscript_model, "torchscript", example)


def test_unknown_format_is_named(tiny_checkpoint: dict) -> None:
    with pytest.raises(SeglabError, match="format='tflite'; expected one of onnx, torchscript"):
        export_checkpoint(tiny_checkpoint["ckpt"], "tflite")
