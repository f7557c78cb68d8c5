"""eval.py on a checkpoint trained in the session: same score as training, reports, MLflow."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import run_entry_point

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def evaluated(tiny_checkpoint: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    cwd = tmp_path_factory.mktemp("eval")
    # No MLFLOW_TRACKING_URI: the evaluation must find the training run's store by itself.
    proc = run_entry_point(
        "eval.py",
        [f"ckpt_path={tiny_checkpoint['ckpt']}", "data.num_workers=0", "progress_bar=false"],
        cwd,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return {"proc": proc, "out": cwd / "run"}


def test_eval_reproduces_the_last_logged_val_miou(tiny_checkpoint: dict, evaluated: dict) -> None:
    report = json.loads((evaluated["out"] / "metrics.json").read_text())
    assert report["split"] == "val" and report["data"] == "synthetic"
    assert report["metrics"]["test/mIoU"] == pytest.approx(tiny_checkpoint["val_miou"], abs=1e-4)
    assert "test/mIoU" in evaluated["proc"].stdout and "pixel share" in evaluated["proc"].stdout


def test_per_class_csv_has_scores_and_pixel_shares(evaluated: dict) -> None:
    with (evaluated["out"] / "per_class.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["class"] for r in rows] == [
        "background",
        "disc",
        "square",
        "triangle",
        "ring",
        "star",
    ]
    shares = [float(r["pixel_share"]) for r in rows]
    assert sum(shares) == pytest.approx(1.0) and shares[0] > 0.5  # background dominates
    report = json.loads((evaluated["out"] / "metrics.json").read_text())
    ious = [float(r["IoU"]) for r in rows if r["IoU"] not in ("", "nan")]
    finite = [v for v in ious if math.isfinite(v)]
    assert report["metrics"]["test/mIoU"] == pytest.approx(sum(finite) / len(finite), abs=1e-5)


def test_evaluation_run_is_nested_under_the_training_run(
    tiny_checkpoint: dict, evaluated: dict
) -> None:
    client = MlflowClient(tiny_checkpoint["tracking_uri"])
    train = client.get_run(tiny_checkpoint["run_id"])
    runs = client.search_runs(
        [train.info.experiment_id], f"tags.`seglab.train_run_id` = '{train.info.run_id}'"
    )
    assert len(runs) == 1
    run = runs[0]
    assert run.data.tags["mlflow.parentRunId"] == train.info.run_id
    assert run.data.tags["seglab.kind"] == "evaluation"
    assert run.data.metrics["test/mIoU"] == pytest.approx(tiny_checkpoint["val_miou"], abs=1e-4)
    assert "test/IoU/disc" in run.data.metrics
    assert run.data.params["split"] == "val"
    artifacts = {f.path for f in client.list_artifacts(run.info.run_id, "evaluation")}
    assert artifacts == {"evaluation/metrics.json", "evaluation/per_class.csv"}


def _compose_eval(overrides: list[str], out: Path):
    from hydra import compose, initialize_config_dir

    from tests.conftest import CONF_DIR

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose(
            "eval",
            overrides=[
                *overrides,
                f"paths.output_dir={out}",
                "progress_bar=false",
                "log_mlflow=false",
                "data.num_workers=0",
            ],
        )


def test_train_split_with_tta(tiny_checkpoint: dict, tmp_path: Path) -> None:
    # (validation through infer=slide is tested in test_sliding.py: the same task code path)
    from seglab.cli.evaluate import evaluate

    cfg = _compose_eval(
        [f"ckpt_path={tiny_checkpoint['ckpt']}", "split=train", "infer=whole", "infer.tta=true"],
        tmp_path,
    )
    metrics = evaluate(cfg)
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert report["split"] == "train" and report["infer"] == "whole"
    assert report["metrics"]["test/mIoU"] == pytest.approx(metrics["test/mIoU"])
    assert sum(r["label_pixels"] for r in report["per_class"]) > 20 * 64 * 64 * 0.8  # 24 images


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model=fpn"], "model.arch: checkpoint 'unet', given 'fpn'"),
        (["data=synthetic", "data.num_classes=3", "data.class_names=[a,b,c]"],
         "predicts 6 classes"),
    ],
)  # fmt: skip
def test_what_does_not_fit_the_checkpoint_is_named(
    tiny_checkpoint: dict, tmp_path: Path, overrides: list[str], message: str
) -> None:
    from seglab.cli.evaluate import evaluate
    from seglab.errors import ConfigError

    cfg = _compose_eval([f"ckpt_path={tiny_checkpoint['ckpt']}", *overrides], tmp_path)
    with pytest.raises(ConfigError, match=message):
        evaluate.__wrapped__(cfg)
