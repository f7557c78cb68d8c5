"""Grouped val metrics (Dice per case, IoU per city) and class statistics / auto class weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from seglab.data.stats import class_frequencies, dataset_stats, median_frequency_weights
from seglab.errors import ConfigError
from seglab.metrics.grouped import (
    GroupedDice,
    GroupedIoU,
    build_grouped_metrics,
    compute_grouped_metrics,
    update_grouped_metrics,
)
from tests import datasets as D
from tests.conftest import compose_train


def _dice(p: np.ndarray, t: np.ndarray) -> float:
    return 1.0 if p.sum() + t.sum() == 0 else 2 * (p & t).sum() / (p.sum() + t.sum())


def test_dice_per_case_and_global_match_a_direct_count() -> None:
    rng = np.random.default_rng(0)
    preds = rng.integers(0, 3, (6, 8, 8))
    target = rng.integers(0, 3, (6, 8, 8))
    target[4:] = np.where(target[4:] == 2, 1, target[4:])  # case 9: no tumour in the label...
    preds[4:] = np.where(preds[4:] == 2, 1, preds[4:])  # ...nor in the prediction: Dice 1
    target[0, 0, :] = 255
    groups = np.array([3, 3, 5, 5, 9, 9])
    metric = GroupedDice({"liver": [1, 2], "tumour": [2]})
    for half in (slice(0, 3), slice(3, 6)):  # cases spread over batches
        metric.update(
            torch.from_numpy(preds[half]),
            torch.from_numpy(target[half]),
            torch.from_numpy(groups[half]),
        )
    out = metric.compute()
    valid = target != 255
    for name, ids in (("liver", [1, 2]), ("tumour", [2])):
        p, t = np.isin(preds, ids) & valid, np.isin(target, ids) & valid
        per_case = np.mean([_dice(p[groups == g], t[groups == g]) for g in (3, 5, 9)])
        assert out[f"dice_per_case/{name}"].item() == pytest.approx(per_case, abs=1e-6)
        assert out[f"dice_global/{name}"].item() == pytest.approx(_dice(p, t), abs=1e-6)


def test_iou_per_city_and_missing_group_key() -> None:
    preds = torch.tensor([[[1, 1], [0, 0]], [[1, 0], [1, 0]], [[0, 0], [0, 0]]])
    target = torch.tensor([[[1, 0], [0, 255]], [[1, 1], [1, 1]], [[0, 0], [0, 0]]])
    metrics = build_grouped_metrics(
        [
            {
                "_target_": "seglab.metrics.grouped.GroupedIoU",
                "class_id": 1,
                "group_names": ["a", "b", "c"],
            }
        ],
        ignore_index=255,
    )
    update_grouped_metrics(metrics, preds, {"mask": target, "group": torch.tensor([0, 1, 2])})
    out = compute_grouped_metrics(metrics)
    assert out == {"IoU_city/a": 0.5, "IoU_city/b": 0.5}  # c: no building anywhere → left out
    with pytest.raises(ConfigError, match="'group'"):
        update_grouped_metrics(metrics, preds, {"mask": target})
    with pytest.raises(ConfigError, match="group_names"):
        GroupedIoU(1, ["a"]).update(preds, target, torch.tensor([0, 1, 0]))


def test_class_frequencies_and_median_weights(tmp_path: Path) -> None:
    from seglab.data.ccp import CCP

    root, written = D.make_ccp(tmp_path / "ccp")
    stats = class_frequencies(CCP(root, "all"), 59)
    expected = np.bincount(np.concatenate([m.ravel() for m in written.values()]), minlength=59)
    assert stats["pixels"] == expected.tolist() and stats["images"] == len(written)
    weights = median_frequency_weights(stats)
    present = expected > 0
    assert all(w == 0 for w, p in zip(weights, present, strict=True) if not p)
    freq = np.array(stats["pixels"])[present] / np.array(stats["image_pixels"])[present]
    assert np.allclose(np.array(weights)[present], np.median(freq) / freq, rtol=1e-5)


def test_stats_are_cached_and_auto_weights_reach_the_loss(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from seglab.cli.train import train

    root, _ = D.make_ccp(tmp_path / "ccp")
    overrides = [
        "data=ccp",
        f"data.root={root}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.dataset.val_size=3",
    ]
    cfg = compose_train(overrides, output_dir=tmp_path / "out")
    first = dataset_stats(cfg.data)
    assert "counting class frequencies over 7" in capsys.readouterr().err
    (cached,) = (tmp_path / "cache").rglob("class_stats.json")
    assert json.loads(cached.read_text())["pixels"] == first["pixels"]
    assert dataset_stats(cfg.data)["pixels"] == first["pixels"]
    assert "counting" not in capsys.readouterr().err  # reused

    run = compose_train(
        [*overrides, "loss.class_weights=auto", "trainer.fast_dev_run=true", "data.image_size=64",
         "data.crop_size=32", "data.num_workers=0", "data.batch_size=2", "trainer.accelerator=cpu"],
        output_dir=tmp_path / "out",
    )  # fmt: skip
    train(run)
    assert list(run.loss.class_weights) == median_frequency_weights(first)


def test_stats_command_prints_the_table(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from seglab.data.stats import main

    root, written = D.make_ccp(tmp_path / "ccp")
    main(
        [
            "data=ccp",
            f"data.root={root}",
            f"data.cache_dir={tmp_path / 'c'}",
            "data.dataset.val_size=3",
        ]
    )
    out = capsys.readouterr().out
    assert " 41  skin " in out and "images: 7, ignored pixels: 0" in out
    with pytest.raises(SystemExit) as info:
        main(["data=ccp", f"data.root={tmp_path / 'nowhere'}"])
    assert info.value.code == 2 and "label_list.mat" in capsys.readouterr().err
    for bad, named in ((["data=nosuchset"], "nosuchset"), (["--root=/x"], "--root=/x")):
        with pytest.raises(SystemExit) as info:
            main(bad)
        assert info.value.code == 2 and named in capsys.readouterr().err
    main(["--help"])
    assert "python -m seglab.data.stats data=<name>" in capsys.readouterr().out
