"""The interface every task kind implements (seglab.tasks.base.SegmentationTask), and the code
that works through it alone: MLflow artifacts, checkpoint loading for the tools."""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor

import seglab.tasks as tasks
from seglab.errors import ConfigError
from seglab.tasks.base import SegmentationTask
from seglab.tasks.checkpoint import load_task
from seglab.tracking.callbacks import MLflowArtifacts
from tests.conftest import ROOT

DATA = {
    "name": "stub", "num_classes": 3, "class_names": ["bg", "a", "b"], "ignore_index": 255,
    "palette": [[0, 0, 0], [255, 0, 0], [0, 255, 0]], "in_channels": 3,
    "mean": [0.5] * 3, "std": [0.25] * 3,
}  # fmt: skip
HPARAMS = {"model": {"task": "stub"}, "loss": None, "optim": {}, "scheduler": {}, "data": DATA}


class StubTask(SegmentationTask):
    """A third task kind in a few lines: a 1×1 conv, no inference settings, not predictable."""

    uses_loss = False

    def __init__(self, model: dict, optim: dict, scheduler: dict, data: dict, **kw: Any) -> None:
        super().__init__(model, kw.get("loss"), optim, scheduler, data, kw.get("infer"))
        self.net = torch.nn.Conv2d(3, int(data["num_classes"]), 1)
        self.class_map_calls = 0

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images)

    def class_maps(self, images: Any) -> list[Tensor]:
        self.class_map_calls += 1
        return [self(image[None]).argmax(dim=1)[0] for image in images]

    def last_confusion(self, stage: str) -> Tensor | None:
        return torch.eye(3) * 5 if stage == "val" else None


class StubInstanceTask(StubTask):
    def instance_overlays(self, samples: Any, min_score: float) -> Any:
        masks = np.zeros((1, 8, 8), bool)
        masks[0, 2:5, 2:5] = True
        return [(masks, ["a"])] * len(samples), [(masks, [f"a {min_score:.2f}"])] * len(samples)


def test_a_task_without_class_maps_is_refused() -> None:
    class Incomplete(SegmentationTask):
        pass

    with pytest.raises(TypeError, match="class_maps"):
        Incomplete(**HPARAMS)


def test_defaults_of_a_kind_without_inference_settings_or_loss() -> None:
    task = StubTask(**HPARAMS)
    task.set_inference({"mode": "slide"})  # ignored, as documented
    assert task.infer_settings is None
    assert "loss" not in task.hparams  # uses_loss=False: not kept in its checkpoints
    assert not task.handled_by("predict.py") and not task.handled_by("export.py")
    assert task.handled_by("eval.py")
    with pytest.raises(NotImplementedError, match="StubTask"):
        task.infer(torch.zeros(1, 3, 8, 8))
    assert SegmentationTask.last_confusion(task, "val") is None  # before any epoch


def _log_images(task: StubTask) -> list[str]:
    samples = [{"image": torch.rand(3, 8, 8), "mask": torch.zeros(8, 8, dtype=torch.long)}] * 2
    trainer = SimpleNamespace(datamodule=SimpleNamespace(val_dataset=samples), current_epoch=3)
    logged: list[str] = []
    steps: list[tuple[str, int]] = []
    logger = SimpleNamespace(
        log_artifact=lambda path, folder: logged.append(Path(path).name),
        log_image_step=lambda path, key, step: steps.append((key, step)),
    )
    MLflowArtifacts(num_overlay_images=2).log_images(trainer, task, logger)  # type: ignore[arg-type]
    # Each image is also the epoch's step of its series (the UI's image slider).
    assert steps == [(Path(name).stem, 3) for name in logged]
    return logged


def test_artifacts_through_the_interface_class_maps() -> None:
    task = StubTask(**HPARAMS)
    assert _log_images(task) == ["confusion_matrix.png", "val_overlays.png"]
    assert task.class_map_calls == 1 and task.training  # train mode restored


def test_artifacts_through_the_interface_instances() -> None:
    task = StubInstanceTask(**HPARAMS)
    assert _log_images(task) == ["confusion_matrix.png", "val_overlays.png"]
    assert task.class_map_calls == 0  # instances drawn instead


@pytest.mark.parametrize("tool", ["predict.py", "export.py"])
def test_tools_refuse_kinds_without_the_capability(
    tool: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(tasks.TASKS, "stub", StubTask)
    path = tmp_path / "stub.ckpt"
    task = StubTask(**HPARAMS)
    hparams = {k: v for k, v in HPARAMS.items() if k != "loss"}
    torch.save({"hyper_parameters": hparams, "state_dict": task.state_dict()}, path)
    assert isinstance(load_task(path), StubTask)  # eval.py's load: any kind
    with pytest.raises(
        ConfigError, match=rf"stub segmentation checkpoint.*{tool} handles semantic"
    ):
        load_task(path, tool=tool)


def test_tracking_callbacks_use_the_base_interface_only() -> None:
    """Tracking sits above tasks: the callbacks import no task kind and no data module."""
    source = (ROOT / "src/seglab/tracking/callbacks.py").read_text()
    imported = {
        node.module for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)
    }
    seglab = {m for m in imported if m and m.startswith("seglab.")}
    assert "seglab.tasks.base" in seglab
    assert not {m for m in seglab if m.startswith(("seglab.data", "seglab.tasks."))} - {
        "seglab.tasks.base"
    }
