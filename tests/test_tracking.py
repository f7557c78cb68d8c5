"""MLflow plumbing: store resolution, run names, params, tags, images."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH
from PIL import Image

from seglab.tracking.naming import run_name
from seglab.tracking.params import flatten_config, to_mlflow_params
from seglab.tracking.plots import save_confusion_matrix, save_overlay_grid
from seglab.tracking.provenance import provenance_tags
from seglab.tracking.store import resolve_tracking_uri
from tests.conftest import ROOT


def test_store_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri, artifacts = resolve_tracking_uri(None, tmp_path / "mlruns")
    assert uri == f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    assert artifacts == (tmp_path / "mlruns" / "artifacts").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert resolve_tracking_uri(None, tmp_path) == ("http://127.0.0.1:5999", None)
    assert resolve_tracking_uri("sqlite:///x.db", tmp_path) == ("sqlite:///x.db", None)


def test_run_names_differ_under_a_fixed_seed() -> None:
    cfg = {"model": {"encoder": "resnet18"}, "data": {"name": "voc"}}
    choices = {"model": "unet", "data": "voc", "loss": "ce_dice"}
    names = set()
    for _ in range(5):
        random.seed(0)
        names.add(run_name(cfg, choices))
    assert len(names) == 5
    assert all(n.startswith("unet-resnet18_voc_ce_dice-") for n in names)


def test_flatten_drops_hydra_keys_and_keeps_transform_names() -> None:
    cfg = {
        "model": {"_target_": "seglab.models.build_smp_model", "encoder": "resnet18"},
        "data": {
            "class_names": ["a", "b"],
            "train_transforms": [{"_target_": "albumentations.HorizontalFlip", "p": 0.5}],
            "dataset": {"_target_": "x.Y", "_partial_": True, "root": "/d"},
        },
    }
    assert flatten_config(cfg) == {
        "model.encoder": "resnet18",
        "data.class_names": ["a", "b"],
        "data.train_transforms.0.type": "HorizontalFlip",
        "data.train_transforms.0.p": 0.5,
        "data.dataset.root": "/d",
    }


def test_over_long_params_are_cut_not_fatal() -> None:
    with pytest.warns(UserWarning, match="data.class_names"):
        params = to_mlflow_params({"data": {"class_names": ["x" * 50] * 500}, "seed": None})
    assert len(params["data.class_names"]) == MAX_PARAM_VAL_LENGTH
    assert params["seed"] == "null"


def test_provenance_tags() -> None:
    tags = provenance_tags(ROOT, ["model=fpn"], Path("/tmp/out"))
    assert tags["seglab.overrides"] == "model=fpn"
    assert tags["seglab.output_dir"] == "/tmp/out"
    if (ROOT / ".git").exists():
        assert len(tags["mlflow.source.git.commit"]) == 40
        assert tags["seglab.git.dirty"] in ("true", "false")


def test_confusion_matrix_and_overlay_images(tmp_path: Path) -> None:
    matrix = np.array([[50, 2, 0], [3, 40, 1], [0, 0, 0]])
    png = save_confusion_matrix(matrix, ["bg", "cat", "dog"], tmp_path / "cm.png")
    assert Image.open(png).size[0] > 100
    image = np.zeros((32, 40, 3), np.uint8)
    truth = np.zeros((32, 40), np.uint8)
    truth[5:10] = 255
    pred = np.ones((32, 40), np.int64)
    grid = save_overlay_grid(
        [image] * 2, [truth] * 2, [pred] * 2, [[0, 0, 0], [255, 0, 0]], 255, tmp_path / "g.png"
    )
    arr = np.array(Image.open(grid))
    scale = 5  # 32 px enlarged to at least 160
    assert arr.shape == (2 * (32 * scale + 4), 3 * 40 * scale + 2 * 4, 3)
    assert tuple(arr[0, 2 * (40 * scale + 4) + 1]) == (255, 0, 0)  # prediction: class 1's colour
    assert tuple(arr[6 * scale, 40 * scale + 4 + 1]) == (255, 255, 255)  # truth: ignore is white
