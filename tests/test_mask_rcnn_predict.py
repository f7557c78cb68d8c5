"""predict.py on a Mask R-CNN checkpoint: instances JSON (COCO results, RLE), overlay, and the
class map the instances paint; score_thresh. On an untrained checkpoint: the outputs must agree
with the detector and with each other, whatever it detects."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from pycocotools import mask as mask_utils

from seglab.cli.predict import predict
from seglab.run.build import build_task
from tests.conftest import TINY_DATA, compose_entry, compose_train
from tests.test_mask_rcnn_train import TINY_MASK_RCNN


@pytest.fixture(scope="module")
def mask_rcnn_ckpt(tiny_synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A freshly built (untrained) tiny Mask R-CNN saved as a checkpoint the way train.py's are:
    plain hyperparameters and the state dict. A low box score threshold so it detects things."""
    tmp = tmp_path_factory.mktemp("mask_rcnn_ckpt")
    cfg = compose_train(
        [*TINY_MASK_RCNN, *TINY_DATA, f"data.root={tiny_synthetic_root}",
         "model.min_size=64", "model.max_size=64", "model.box_score_thresh=0.0"],
        output_dir=tmp,
    )  # fmt: skip
    torch.manual_seed(0)
    task = build_task(OmegaConf.to_container(cfg, resolve=True))
    path = tmp / "untrained.ckpt"
    torch.save(
        {"state_dict": task.state_dict(), "hyper_parameters": dict(task.hparams),
         "seglab_precision": "32-true"},
        path,
    )  # fmt: skip
    return path


def _predict(ckpt: Path, image: Path, out: Path, *extra: str) -> list[Path]:
    overrides = [f"ckpt_path={ckpt}", f"input={image}", f"output={out}", "progress_bar=false"]
    return predict(compose_entry("predict", [*overrides, *extra], out.parent / "hydra"))


def test_instances_json_overlay_and_painted_mask(
    mask_rcnn_ckpt: Path, tiny_synthetic_root: Path, tmp_path: Path
) -> None:
    image = next((tiny_synthetic_root / "VOCdevkit" / "VOC2012" / "JPEGImages").glob("*.jpg"))
    (mask_path,) = _predict(mask_rcnn_ckpt, image, tmp_path / "out", "score_thresh=0.0")
    stem = tmp_path / "out" / image.stem
    results = json.loads(Path(f"{stem}_instances.json").read_text())
    with Image.open(image) as source:
        width, height = source.size
    assert results, "the untrained detector finds something at score_thresh=0"
    union = np.zeros((height, width), dtype=bool)
    for entry in results:
        assert entry["category_id"] in range(1, 6) and entry["image_id"] == image.stem
        assert entry["category_name"] in ("disc", "square", "triangle", "ring", "star")
        decoded = mask_utils.decode(
            {**entry["segmentation"], "counts": entry["segmentation"]["counts"].encode()}
        )
        assert decoded.shape == (height, width)
        x, y, w, h = entry["bbox"]
        assert -1 <= x <= x + w <= width + 1 and -1 <= y <= y + h <= height + 1
        union |= decoded.astype(bool)
    with Image.open(mask_path) as mask_image:
        assert mask_image.mode == "P" and mask_image.size == (width, height)
        painted = np.asarray(mask_image)
    # Pixels some instance covers carry a thing class; the rest the background class (0).
    np.testing.assert_array_equal(painted != 0, union)
    top = max(results, key=lambda r: r["score"])  # the best instance wins where it lies
    top_mask = mask_utils.decode(
        {**top["segmentation"], "counts": top["segmentation"]["counts"].encode()}
    )
    assert (painted[top_mask.astype(bool)] == top["category_id"]).all()
    with Image.open(f"{stem}_overlay.png") as overlay:
        assert overlay.size == (width, height)


def test_score_thresh_leaves_instances_out(
    mask_rcnn_ckpt: Path, tiny_synthetic_root: Path, tmp_path: Path
) -> None:
    image = next((tiny_synthetic_root / "VOCdevkit" / "VOC2012" / "JPEGImages").glob("*.jpg"))
    (mask_path,) = _predict(mask_rcnn_ckpt, image, tmp_path / "out", "score_thresh=1.01")
    assert json.loads((tmp_path / "out" / f"{image.stem}_instances.json").read_text()) == []
    assert not np.asarray(Image.open(mask_path)).any()


@pytest.mark.slow
def test_export_torchscript_with_parity(mask_rcnn_ckpt: Path, tmp_path: Path) -> None:
    from seglab.errors import ConfigError
    from seglab.export import export_checkpoint

    path, info = export_checkpoint(mask_rcnn_ckpt, "torchscript", output=tmp_path / "m.pt")
    spec = json.loads(info.read_text())
    assert spec["max_abs_diff"] <= 1e-4 and spec["output"]["masks"] == ["n", 1, "height", "width"]
    scripted = torch.jit.load(str(path))
    boxes, classes, scores, masks = scripted(torch.rand(3, 50, 70) * 255)  # any size
    assert masks.shape[1:] == (1, 50, 70) and len(boxes) == len(classes) == len(scores)
    assert set(classes.tolist()) <= {1, 2, 3, 4, 5}
    with pytest.raises(ConfigError, match="torchscript only"):
        export_checkpoint(mask_rcnn_ckpt, "onnx", output=tmp_path / "m.onnx")
