"""Errors a user causes end in a clear message and a non-zero exit, never a traceback.

The user errors go through `seglab.cli.train.train`, the function `python train.py` calls (it
turns them into a message and exit status 2); Hydra's own composition error needs the real
command, so that one runs `python train.py`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from seglab.cli.train import train
from tests.conftest import compose_train, new_store, run_entry_point


def _user_error(overrides: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """train.py's stderr for a run that must stop with exit status 2 before training."""
    cfg = compose_train(overrides, output_dir=tmp_path / "run")
    with pytest.raises(SystemExit) as stopped:
        train(cfg)
    assert stopped.value.code == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    assert not (tmp_path / "run" / "checkpoints").exists()
    return captured.err


def test_class_count_mismatch_is_reported_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _user_error(["model.num_classes=3"], tmp_path, capsys)
    assert "model.num_classes=3 but data.num_classes=6" in err


@pytest.mark.slow
def test_unknown_model_lists_the_choices(tmp_path: Path) -> None:
    proc = run_entry_point("train.py", ["model=unetz"], tmp_path)
    assert proc.returncode != 0
    assert "Could not find 'model/unetz'" in proc.stderr
    assert "unet" in proc.stderr and "deeplabv3plus" in proc.stderr


def test_missing_dataset_root_names_the_path_and_layout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere"
    uri = new_store(tmp_path)
    args = [f"data.root={missing}", "data.prepare=null", f"logger.tracking_uri={uri}"]
    err = _user_error(args, tmp_path, capsys)
    assert str(missing) in err and "JPEGImages" in err
    assert "Could not find" not in err
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("synthetic")
    assert experiment is None or not client.search_runs([experiment.experiment_id])


def test_unknown_encoder_names_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _user_error(["model.encoder=resnet1000"], tmp_path, capsys)
    assert "model.encoder='resnet1000'" in err
