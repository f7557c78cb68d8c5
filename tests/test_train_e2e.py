"""`python train.py` end to end on tiny synthetic data, read back from MLflow."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from mlflow.tracking import MlflowClient
from PIL import Image

from tests.conftest import TINY_DATA, new_store, run_entry_point, tiny_run

pytestmark = pytest.mark.slow

# The default command's run (real U-Net, the machine's precision), short.
SHORT_RUN = [
    *tiny_run(epochs=3, stub=False, precision=None, plots=True, sanity_check=True),
    "optim.lr=0.001",  # the default 3e-3 is tuned for full runs; 9 steps need a gentler start
    "trainer.accelerator=cpu",
    "trainer.devices=1",
    "callbacks.mlflow_artifacts.every_n_epochs=2",
    "test_after_fit=true",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_synthetic_root: Path) -> dict:
    """Two short default runs into one MLflow store."""
    tmp = tmp_path_factory.mktemp("e2e")
    uri = new_store(tmp)
    results = []
    for i in range(2):
        cwd = tmp / f"run{i}"
        cwd.mkdir()
        proc = run_entry_point(
            "train.py", [*SHORT_RUN, f"data.root={tiny_synthetic_root}"], cwd, tracking_uri=uri
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
        results.append({"proc": proc, "out": cwd / "run"})
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("synthetic").experiment_id])
    return {"client": client, "runs": runs, "results": results, "root": tiny_synthetic_root}


def _untrained_val_miou(root: Path, tmp: Path) -> float:
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from seglab.run.build import build_task
    from tests.conftest import compose_train

    cfg = compose_train([*TINY_DATA, f"data.root={root}"], output_dir=tmp)
    pl.seed_everything(cfg.seed)
    task = build_task(OmegaConf.to_container(cfg, resolve=True))
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    (metrics,) = trainer.validate(task, datamodule=instantiate(cfg.data), verbose=False)
    return metrics["val/mIoU"]


def test_training_beats_the_untrained_model(trained: dict, tmp_path: Path) -> None:
    client, run = trained["client"], trained["runs"][0]
    history = client.get_metric_history(run.info.run_id, "val/mIoU")
    best = max(m.value for m in history)
    assert best > _untrained_val_miou(trained["root"], tmp_path) + 0.05


def test_mlflow_run_has_params_metrics_and_artifacts(trained: dict) -> None:
    client = trained["client"]
    for run in trained["runs"]:
        assert run.info.status == "FINISHED"
        params = run.data.params
        assert params["model.encoder"] == "resnet18"
        assert params["optim.lr"] == "0.001"
        assert params["data.num_classes"] == "6"
        assert params["loss.ignore_index"] == "255"  # interpolation resolved
        assert not any("${" in v for v in params.values())
        assert not any("_target_" in k for k in params)
        history = client.get_metric_history(run.info.run_id, "val/mIoU")
        assert len(history) >= 2
        metrics = run.data.metrics
        for key in ("train/loss", "val/loss", "val/aAcc", "val/mAcc", "val/mF1", "val/FWIoU"):
            assert key in metrics, key
        for name in ("background", "disc", "star"):
            assert f"val/IoU/{name}" in metrics and f"val/F1/{name}" in metrics
        assert "test/mIoU" in metrics and "test/IoU/disc" in metrics
        assert any(k.startswith("lr-") for k in metrics)
        tags = run.data.tags
        for key in ("seglab.command", "seglab.overrides", "seglab.output_dir", "seglab.version"):
            assert key in tags
        artifacts = {
            f.path for d in ("config", "plots", "checkpoints")
            for f in client.list_artifacts(run.info.run_id, d)
        }  # fmt: skip
        assert {
            "config/config.yaml", "plots/confusion_matrix.png", "plots/val_overlays.png",
            "checkpoints/best.ckpt",
        } <= artifacts  # fmt: skip


def test_runs_get_distinct_names(trained: dict) -> None:
    names = [r.info.run_name for r in trained["runs"]]
    assert len(set(names)) == 2
    assert all(n.startswith("unet-resnet18_synthetic_ce-") for n in names)


def test_checkpoints_load_with_weights_only(trained: dict) -> None:
    out: Path = trained["results"][0]["out"]
    for name in ("best.ckpt", "last.ckpt"):
        ckpt = torch.load(out / "checkpoints" / name, weights_only=True, map_location="cpu")
        assert ckpt["hyper_parameters"]["data"]["num_classes"] == 6
    run_file = (out / "mlflow_run.json").read_text()
    assert trained["runs"][0].info.run_id in run_file or trained["runs"][1].info.run_id in run_file


def test_console_summary(trained: dict) -> None:
    stdout = trained["results"][0]["proc"].stdout
    assert "val/mIoU" in stdout and "best checkpoint" in stdout and "MLflow run" in stdout
    assert "disc" in stdout


def test_logged_metrics_are_finite(trained: dict) -> None:
    for run in trained["runs"]:
        assert all(math.isfinite(v) for k, v in run.data.metrics.items() if "/" in k)


def test_eval_reproduces_the_best_val_miou(trained: dict) -> None:
    out: Path = trained["results"][0]["out"]
    run_id = json.loads((out / "mlflow_run.json").read_text())["run_id"]
    history = trained["client"].get_metric_history(run_id, "val/mIoU")
    proc = run_entry_point(
        "eval.py",
        [f"ckpt_path={out / 'checkpoints' / 'best.ckpt'}", "data.num_workers=0"],
        out.parent,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    reported = float(re.search(r"test/mIoU\s*│\s*([0-9.]+)", proc.stdout).group(1))
    assert reported == pytest.approx(max(m.value for m in history), abs=1e-4)


def test_predict_writes_masks_at_the_input_size(trained: dict, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    (inputs / "nested").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (70, 90, 4), dtype=np.uint8), "RGBA").save(
        inputs / "a.png"
    )
    Image.fromarray(rng.integers(0, 255, (45, 33), dtype=np.uint8), "L").save(
        inputs / "nested" / "b.png"
    )
    Image.fromarray(rng.integers(0, 65535, (40, 50), dtype=np.uint16)).save(inputs / "c.png")
    ckpt = trained["results"][0]["out"] / "checkpoints" / "best.ckpt"
    out = tmp_path / "out"
    proc = run_entry_point(
        "predict.py", [f"ckpt_path={ckpt}", f"input={inputs}", f"output={out}"], tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # subfolders of the input are mirrored in the output
    for stem, size in (("a", (90, 70)), ("nested/b", (33, 45)), ("c", (50, 40))):
        mask = Image.open(out / f"{stem}_mask.png")
        assert mask.mode == "P" and mask.size == size
        assert np.array(mask).max() < 6
        assert Image.open(out / f"{stem}_overlay.png").size == size
