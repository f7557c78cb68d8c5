"""The recipes in experiments/experiment/: each composes, states what it reproduces, and runs
`trainer.fast_dev_run=true` on the tiny fixture of its dataset with its real network; the README's
results table is the one their `recipe` blocks make; `ccp_unet_cpu` trains a few steps on the
real CCP photos when they are here."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests import datasets as D
from tests.conftest import ROOT, compose_train, new_store
from tests.test_ccp_real import CCP_ROOT
from tests.test_datasets_train import PER_DATASET, SMALL

PRESETS = sorted(p.stem for p in (ROOT / "experiments" / "experiment").glob("*.yaml"))
RECIPE_KEYS = {"reproduces", "metric", "reference", "source", "hardware", "reproduced"}
# What the tiny fixtures need on top of the dataset's usual test sizes (PER_DATASET): no
# download (pretrained weights → none), crops and model sizes that fit 32x64 images.
FIXTURE = {
    "cityscapes_deeplabv3plus": ["data.train_transforms.pad.min_width=64",
                                 "data.train_transforms.crop.width=64"],
    "cityscapes_unet": ["data.train_transforms.pad.min_width=64",
                        "data.train_transforms.crop.width=64"],
    "cityscapes_mask_rcnn": ["model.weights=null", "model.min_size=32", "model.max_size=64"],
    "inria_unet": ["infer.window=32"],
}  # fmt: skip
NO_DOWNLOAD = {"imagenet": "model.encoder_weights=null"}


def _recipe(name: str) -> dict:
    cfg = compose_train([f"experiment={name}"])
    return OmegaConf.to_container(cfg.recipe)  # type: ignore[return-value]


@pytest.mark.parametrize("name", PRESETS)
def test_preset_states_what_it_reproduces(name: str) -> None:
    recipe = _recipe(name)
    assert set(recipe) == RECIPE_KEYS, name
    text = (ROOT / "experiments" / "experiment" / f"{name}.yaml").read_text()
    assert "Reproduced here:" in text or recipe["reproduced"] != "not yet", name
    assert "Hardware:" in text or name == "synthetic_unet", name


def results_table() -> str:
    """The README's results table, from the presets' `recipe` blocks."""
    rows = [
        "| preset | reproduces | metric | reference (as published) | where published | hardware | reproduced here |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in PRESETS:
        r = _recipe(name)
        reference = r["reference"] or "—"
        rows.append(
            f"| `{name}` | {r['reproduces']} | `{r['metric']}` | {reference} | {r['source']} "
            f"| {r['hardware']} | {r['reproduced']} |"
        )
    return "\n".join(rows)


def test_readme_results_table_is_built_from_the_presets() -> None:
    assert results_table() in (ROOT / "README.md").read_text(), (
        "README.md's results table differs from the presets; expected:\n" + results_table()
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", [p for p in PRESETS if p != "synthetic_unet"])
def test_preset_fast_dev_run_on_the_fixture(name: str, tmp_path: Path) -> None:
    from seglab.run.pipeline import train

    data = compose_train([f"experiment={name}"]).data.name
    weights = compose_train([f"experiment={name}"]).model.get("encoder_weights")
    overrides = [
        f"experiment={name}",
        f"data.root={D.ROOT_MAKERS[data](tmp_path / data)}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "trainer.fast_dev_run=true",
        "trainer.precision=32-true",
        *SMALL,
        *PER_DATASET.get(data, []),
        *([NO_DOWNLOAD[weights]] if weights in NO_DOWNLOAD else []),
        *FIXTURE.get(name, []),
    ]
    seen, _ = train(compose_train(overrides, output_dir=tmp_path / "out"))
    metric = _recipe(name)["metric"]
    assert seen["train/loss"] > 0 and metric in seen, sorted(seen)


@pytest.mark.slow
@pytest.mark.skipif(
    not (CCP_ROOT / "label_list.mat").is_file(), reason=f"real CCP not found at {CCP_ROOT}"
)
def test_ccp_unet_cpu_trains_a_few_steps_on_the_real_photos(tmp_path: Path, monkeypatch) -> None:
    """The preset as written (sizes, loss with auto class weights, optimiser) for 2 steps and 1
    val batch of the real photos: it runs, the loss is finite, the scores are scores."""
    from seglab.run.pipeline import train

    monkeypatch.setenv("SEGLAB_ROOT", str(ROOT))  # experiments/, from another working dir
    monkeypatch.chdir(tmp_path)  # the store's artifacts (./mlruns) stay in the test's folder
    cfg = compose_train(
        [
            "experiment=ccp_unet_cpu",
            f"data.root={CCP_ROOT}",
            f"data.cache_dir={tmp_path / 'cache'}",
            "data.num_workers=0",
            "trainer.max_epochs=1",
            "trainer.check_val_every_n_epoch=1",  # the preset validates every 2nd epoch
            "trainer.limit_train_batches=2",
            "trainer.limit_val_batches=1",
            "trainer.num_sanity_val_steps=0",
            "trainer.enable_progress_bar=false",
            "callbacks.mlflow_artifacts=null",
            f"logger.tracking_uri={new_store(tmp_path / 'store')}",
        ],
        output_dir=tmp_path / "out",
    )
    seen, _ = train(cfg)
    assert 0 < seen["train/loss"] < 100 and 0.0 <= seen["val/aAcc"] <= 1.0, sorted(seen)
