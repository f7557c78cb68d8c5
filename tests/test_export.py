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
    image = _image(2, 70, 90)  # batch, height and width unlike the tracing example (1×64×64)
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"image": image.numpy()})
    expected = _reference(tiny_checkpoint["ckpt"], image, normalize=True)
    assert logits.shape == (2, 6, 70, 90)
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
