"""Classical baselines: known answers on hand-made images, and `baseline.py` end to end, its
runs listed by `python -m seglab.compare` beside a trained run of the same data."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from seglab.baselines import KMeansColour, Majority, Otsu, build_baseline
from seglab.cli.baseline import baseline
from seglab.compare import main as compare_main
from seglab.data.voc import VOCSegmentation
from seglab.errors import ConfigError
from tests.conftest import TINY_DATA, compose_entry, run_entry_point

IGNORE = 255


def _scene(background: tuple[int, int, int], objects: dict[int, tuple[int, int, int]], seed: int):
    """A 32×32 flat-coloured image with one 8×8 square per class in `objects`, at random places,
    and its mask (a 1 px void band around each square, as VOC's)."""
    rng = np.random.default_rng(seed)
    image = np.empty((32, 32, 3), dtype=np.uint8)
    image[:] = background
    mask = np.zeros((32, 32), dtype=np.uint8)
    for i, (label, colour) in enumerate(objects.items()):
        top, left = rng.integers(1, 6), 1 + 15 * i + rng.integers(0, 4)
        mask[top - 1 : top + 9, left - 1 : left + 9] = IGNORE
        mask[top : top + 8, left : left + 8] = label
        image[top : top + 8, left : left + 8] = colour
    return image, mask


def test_majority_is_the_most_frequent_training_class() -> None:
    masks = [np.array([[0, 2, 2], [2, IGNORE, IGNORE]]), np.array([[1, 1, 0], [0, 2, IGNORE]])]
    method = Majority(num_classes=3)
    method.fit((np.zeros((2, 3, 3), np.uint8), m) for m in masks)  # counts 0: 3, 1: 2, 2: 4
    assert method.label == 2
    assert (method.predict(np.zeros((5, 7, 3), np.uint8)) == 2).all()


def test_otsu_finds_the_square_and_learns_which_side_is_foreground() -> None:
    dark_on_light = [_scene((200, 200, 200), {1: (30, 30, 30)}, seed) for seed in range(3)]
    method = Otsu(num_classes=2)
    method.fit(dark_on_light)
    assert method.bright_is_foreground is False
    image, mask = _scene((200, 200, 200), {1: (30, 30, 30)}, seed=9)
    valid = mask != IGNORE
    np.testing.assert_array_equal(method.predict(image)[valid], mask[valid])
    with pytest.raises(ConfigError, match="foreground_class"):
        Otsu(num_classes=2, foreground_class=2)


def test_kmeans_names_clusters_by_their_training_classes() -> None:
    """Red is class 1 and blue class 2 in training; a new layout is segmented exactly."""
    colours = {1: (220, 20, 20), 2: (20, 20, 220)}
    training = [_scene((90, 160, 90), colours, seed) for seed in range(2)]
    method = KMeansColour(num_classes=3, clusters=3)
    method.fit(training)
    assert sorted(method.labels.tolist()) == [0, 0, 1, 1, 2, 2]  # 3 clusters × 2 images
    image, mask = _scene((90, 160, 90), {2: colours[2], 1: colours[1]}, seed=5)  # swapped places
    valid = mask != IGNORE
    np.testing.assert_array_equal(method.predict(image)[valid], mask[valid])


def test_unknown_method_or_setting_names_the_key() -> None:
    with pytest.raises(ConfigError, match="method='watershed'"):
        build_baseline("watershed", 3, IGNORE, {})
    with pytest.raises(ConfigError, match="kmeans: unknown settings"):
        build_baseline("kmeans", 3, IGNORE, {"k": 4})


def _val_masks(root: Path) -> np.ndarray:
    reader = VOCSegmentation(root=root, split="val", transform=None, num_classes=6)
    return np.concatenate([reader.load(i)[1].ravel() for i in range(len(reader))])


@pytest.mark.slow
def test_baselines_are_runs_beside_the_trained_one(
    tiny_checkpoint: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The three baselines on the trained run's data and store (a copy): scored, reported,
    in its experiment, and listed by compare with it. Majority's scores are known exactly."""
    # sqlite's backup API: a consistent copy even while eval.py (another worker) writes to it.
    source = sqlite3.connect(tiny_checkpoint["tracking_uri"].removeprefix("sqlite:///"))
    copy = sqlite3.connect(tmp_path / "m.db")
    source.backup(copy)
    copy.close()
    source.close()
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    data = [*TINY_DATA, f"data.root={tiny_checkpoint['data_root']}", "progress_bar=false"]
    # README's command, as a user runs it (the other two in process: the same code).
    proc = run_entry_point(
        "baseline.py", ["method=majority", "data=synthetic", *data], tmp_path, uri
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    report = json.loads((tmp_path / "run" / "metrics.json").read_text())
    labels = _val_masks(tiny_checkpoint["data_root"])
    labels = labels[labels != IGNORE]
    background = float((labels == 0).mean())  # majority: background everywhere
    assert report["metrics"]["val/aAcc"] == pytest.approx(background)
    assert report["metrics"]["val/mIoU"] == pytest.approx(background / 6)  # 5 classes at IoU 0
    assert (tmp_path / "run" / "per_class.csv").read_text().startswith("class,IoU,F1,Acc")
    for method in ("otsu", "kmeans"):
        cfg = compose_entry(
            "baseline", [f"method={method}", f"tracking_uri={uri}", *data], tmp_path / method
        )
        scores = baseline(cfg)
        assert 0 < scores["val/mIoU"] <= 1
    assert scores["val/mIoU"] > background / 6  # kmeans beats the floor on colour-led data

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("synthetic")
    runs = client.search_runs([experiment.experiment_id])
    # (the store may also hold eval.py runs of the checkpoint, from other tests)
    assert [r.data.tags.get("seglab.kind") for r in runs].count("baseline") == 3
    trained = next(r for r in runs if r.info.run_id == tiny_checkpoint["run_id"])
    assert compare_main(["--experiment", "synthetic", "--tracking-uri", uri]) == 0
    table = capsys.readouterr().out
    for name in ("majority_synthetic_baseline", "otsu_synthetic", "kmeans_synthetic"):
        assert name in table
    assert trained.info.run_name[:20] in table  # beside the trained run
    assert f"{len(runs)} runs of 'synthetic'" in table
