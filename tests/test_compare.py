"""`python -m seglab.compare` over the store of a finished 2x2 sweep."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from PIL import Image

from seglab.compare import collect_runs, differing_params, find_experiment, main

pytestmark = pytest.mark.slow  # needs the sweep_store fixture's sweep


def test_compare_prints_the_runs_best_first_and_plots_them(
    sweep_store: dict,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    plot = tmp_path / "curves.png"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sweep_store["uri"])
    assert main(["--experiment", "synthetic", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    client = MlflowClient(sweep_store["uri"])
    children = [
        r
        for r in client.search_runs([client.get_experiment_by_name("synthetic").experiment_id])
        if "mlflow.parentRunId" in r.data.tags
    ]
    assert "4 runs of 'synthetic'" in out
    for header in ("model.name", "best val/mIoU", "last val/mIoU", "duration", "status"):
        assert header in out
    assert "sweep model=" not in out  # the parent is not one of the runs
    # Rows are sorted by the best val/mIoU, which the table shows per run.
    rows = [line for line in out.splitlines() if re.match(r"│ #\d", line)]
    assert len(rows) == 4
    best_by_name = {c.info.run_name: c.data.metrics["best/val/mIoU"] for c in children}
    shown = []
    for line in rows:
        cells = [c.strip() for c in line.strip("│").split("│")]
        assert cells[-1] == "FINISHED"
        shown.append(float(cells[-4]))
        assert float(cells[-4]) == pytest.approx(best_by_name[cells[0]], abs=1e-4)
    assert shown == sorted(shown, reverse=True)
    # The plot: a real PNG with a curve (and legend entry) per run in matplotlib's first colours.
    image = np.asarray(Image.open(plot).convert("RGB"))
    assert image.shape[0] > 200 and image.shape[1] > 300
    colours = {tuple(int(c) for c in p) for p in image.reshape(-1, 3)}
    for colour in ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)):
        assert colour in colours


def test_only_parameters_that_differ_become_columns(sweep_store: dict) -> None:
    client = MlflowClient(sweep_store["uri"])
    rows = collect_runs(client, find_experiment(client, None), "val/mIoU", "max")
    assert len(rows) == 4
    params = differing_params(rows)
    assert "model.name" in params
    assert "optim.lr" not in params and "trainer.max_epochs" not in params
    assert not any("dir" in key for key in params)  # per-run output paths are noise
    assert "callbacks.model_checkpoint.dirpath" not in params


def test_compare_names_a_missing_experiment(
    sweep_store: dict, capsys: pytest.CaptureFixture
) -> None:
    assert main(["--tracking-uri", sweep_store["uri"], "--experiment", "nope"]) == 2
    err = capsys.readouterr().err
    assert "--experiment 'nope' not found" in err and "synthetic" in err
