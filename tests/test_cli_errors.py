"""Errors a user causes end in a clear message and a non-zero exit, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_entry_point

pytestmark = pytest.mark.slow


def test_class_count_mismatch_is_reported_before_training(tmp_path: Path) -> None:
    proc = run_entry_point("train.py", ["model.num_classes=3"], tmp_path)
    assert proc.returncode == 2
    assert "model.num_classes=3 but data.num_classes=6" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_unknown_model_lists_the_choices(tmp_path: Path) -> None:
    proc = run_entry_point("train.py", ["model=unetz"], tmp_path)
    assert proc.returncode != 0
    assert "Could not find 'model/unetz'" in proc.stderr
    assert "unet" in proc.stderr and "deeplabv3plus" in proc.stderr


def test_missing_dataset_root_names_the_path_and_layout(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    args = [
        f"data.root={missing}",
        "data.prepare=null",
        f"logger.tracking_uri=sqlite:///{tmp_path}/m.db",
    ]
    proc = run_entry_point("train.py", args, tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert str(missing) in proc.stderr and "JPEGImages" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "Could not find" not in proc.stderr
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path}/m.db")
    experiment = client.get_experiment_by_name("synthetic")
    assert experiment is None or not client.search_runs([experiment.experiment_id])


def test_unknown_encoder_names_the_key(tmp_path: Path) -> None:
    proc = run_entry_point("train.py", ["model.encoder=resnet1000"], tmp_path)
    assert proc.returncode == 2
    assert "model.encoder='resnet1000'" in proc.stderr
    assert "Traceback" not in proc.stderr
