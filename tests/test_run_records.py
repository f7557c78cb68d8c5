"""What each training run records beyond its metrics: images per epoch, its dataset splits as
inputs (lineage), system metrics, and the experiment's model-training kind (issue 16, 3-6)."""

from __future__ import annotations

import json
import re
import shutil
import threading
from collections import defaultdict
from pathlib import Path

import pytest
from hydra.utils import instantiate
from mlflow.tracking import MlflowClient

from seglab.cli.train import train
from seglab.tracking.lineage import split_manifest
from seglab.tracking.views import EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND, mark_model_training
from tests.conftest import TINY_DATA, compose_train, new_store, tiny_run

EPOCHS = 2
# MLflow names a step-indexed image images/<key>+step+<step>+timestamp+<ms>+<uuid>.png (older
# releases: % for +)
STEP_IMAGE = re.compile(r"images/(?P<key>[^%+]+)[%+]step[%+](?P<step>\d+)[%+].*\.png$")


def _monitor_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "SystemMetricsMonitor" and t.is_alive()]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory, tiny_synthetic_root: Path) -> dict:
    """One 2-epoch stub run with overlays every epoch and system metrics every second, in
    process (so its threads can be counted afterwards)."""
    tmp = tmp_path_factory.mktemp("records")
    uri = new_store(tmp)
    run = tiny_run(tiny_synthetic_root, epochs=EPOCHS, overlays=2)
    extra = [
        f"logger.tracking_uri={uri}",
        "callbacks.mlflow_artifacts.every_n_epochs=1",
        "logger.system_metrics_interval=1",
    ]
    cfg = compose_train([*run, *extra], output_dir=tmp / "out")
    threads_before = len(_monitor_threads())
    train(cfg)
    client = MlflowClient(uri)
    run_id = json.loads((tmp / "out" / "mlflow_run.json").read_text())["run_id"]
    return {
        "client": client,
        "run": client.get_run(run_id),
        "uri": uri,
        "tmp": tmp,
        "threads_leaked": len(_monitor_threads()) - threads_before,
    }


def test_overlays_and_confusion_matrix_are_logged_per_epoch(recorded: dict) -> None:
    client, run_id = recorded["client"], recorded["run"].info.run_id
    steps: dict[str, set[int]] = defaultdict(set)
    for item in client.list_artifacts(run_id, "images"):
        match = STEP_IMAGE.match(item.path)
        if match:
            steps[match["key"]].add(int(match["step"]))
    assert steps == {"val_overlays": {0, 1}, "confusion_matrix": {0, 1}}, steps
    # ... while plots/ keeps the latest PNG as before.
    plots = {f.path for f in client.list_artifacts(run_id, "plots")}
    assert {"plots/val_overlays.png", "plots/confusion_matrix.png"} <= plots


def test_train_and_val_splits_are_the_runs_dataset_inputs(
    recorded: dict, tiny_synthetic_root: Path
) -> None:
    inputs = recorded["run"].inputs.dataset_inputs
    logged = {i.tags[0].value: i.dataset for i in inputs}
    assert set(logged) == {"training", "validation"}
    train_ds, val_ds = logged["training"], logged["validation"]
    assert (train_ds.name, val_ds.name) == ("synthetic/train", "synthetic/val")
    assert json.loads(train_ds.profile)["num_samples"] == 24
    assert json.loads(val_ds.profile)["num_samples"] == 8
    assert json.loads(train_ds.source)["uri"] == str(tiny_synthetic_root.resolve())
    assert train_ds.digest != val_ds.digest
    # The logged digest is the one the split's manifest gives.
    datamodule = _datamodule(tiny_synthetic_root)
    manifest = split_manifest(datamodule.train_dataset, "synthetic/train", tiny_synthetic_root)
    assert train_ds.digest == manifest.digest


def _datamodule(root: Path):  # noqa: ANN202 - a SegmentationDataModule
    datamodule = instantiate(compose_train([*TINY_DATA, f"data.root={root}"]).data)
    datamodule.setup("fit")
    return datamodule


def test_digests_tell_copies_and_splits_apart(tiny_synthetic_root: Path, tmp_path: Path) -> None:
    """Same data (a faithful copy elsewhere) → same digest; a changed file or another split
    → another digest."""
    copy = tmp_path / "copy"
    shutil.copytree(tiny_synthetic_root, copy)
    digests = {}
    for name, root in (("original", tiny_synthetic_root), ("copy", copy)):
        dm = _datamodule(root)
        digests[name] = split_manifest(dm.train_dataset, "synthetic/train", root).digest
        digests[f"{name} val"] = split_manifest(dm.val_dataset, "synthetic/val", root).digest
    assert digests["original"] == digests["copy"]
    assert digests["original val"] == digests["copy val"]
    assert digests["original"] != digests["original val"]
    voc = copy / "VOCdevkit" / "VOC2012"
    first_id = (voc / "ImageSets" / "Segmentation" / "train.txt").read_text().split()[0]
    with (voc / "JPEGImages" / f"{first_id}.jpg").open("ab") as image:
        image.write(b"\0")  # another copy: one file differs
    changed = split_manifest(_datamodule(copy).train_dataset, "synthetic/train", copy).digest
    assert changed != digests["original"]
    split = voc / "ImageSets" / "Segmentation" / "train.txt"
    split.write_text("\n".join(split.read_text().split()[:-1]) + "\n")  # another split
    shorter = split_manifest(_datamodule(copy).train_dataset, "synthetic/train", copy)
    assert len(shorter.ids) == 23 and shorter.digest not in (changed, digests["original"])


def test_system_metrics_are_logged_and_the_monitor_stops(recorded: dict) -> None:
    client, run = recorded["client"], recorded["run"]
    for key in (
        "cpu_utilization_percentage",
        "system_memory_usage_megabytes",
        "disk_usage_percentage",
    ):
        assert f"system/{key}" in run.data.metrics, sorted(run.data.metrics)
    history = client.get_metric_history(run.info.run_id, "system/cpu_utilization_percentage")
    steps = sorted(m.step for m in history)
    assert steps == list(range(len(steps))) and steps, steps
    assert recorded["threads_leaked"] == 0
    assert run.info.status == "FINISHED"


def test_system_metrics_can_be_turned_off(recorded: dict, tiny_synthetic_root: Path) -> None:
    tmp = recorded["tmp"] / "off"
    uri = new_store(tmp)
    run = tiny_run(tiny_synthetic_root, train_batches=1, val_batches=1)
    overrides = [*run, f"logger.tracking_uri={uri}", "logger.system_metrics=false"]
    train(compose_train(overrides, output_dir=tmp / "out"))
    client = MlflowClient(uri)
    (logged,) = client.search_runs([client.get_experiment_by_name("synthetic").experiment_id])
    assert "val/mIoU" in logged.data.metrics
    assert not [k for k in logged.data.metrics if k.startswith("system/")]


def test_experiments_open_in_the_model_training_view(recorded: dict) -> None:
    client = recorded["client"]
    experiment = client.get_experiment(recorded["run"].info.experiment_id)
    assert experiment.tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING_KIND
    # A kind someone chose is left alone.
    other = client.create_experiment("chosen", tags={EXPERIMENT_KIND_TAG: "finetuning"})
    mark_model_training(client, other)
    assert client.get_experiment(other).tags[EXPERIMENT_KIND_TAG] == "finetuning"


def test_a_bad_sampling_interval_names_the_key() -> None:
    from seglab.errors import ConfigError
    from seglab.tracking.system_metrics import SystemMetrics

    with pytest.raises(ConfigError, match="logger.system_metrics_interval=0"):
        SystemMetrics(0)
