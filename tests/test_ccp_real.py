"""The CCP reader on the real dataset (../shared/data/ccp): every pair, the split, learning."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from seglab.data.ccp import CCP, NEVER_USED_IDS, read_label_names
from seglab.data.stats import class_frequencies
from tests.conftest import ROOT, compose_train

CCP_ROOT = Path(os.environ.get("SEGLAB_CCP_ROOT", ROOT.parent / "shared" / "data" / "ccp"))
pytestmark = pytest.mark.skipif(
    not (CCP_ROOT / "label_list.mat").is_file(), reason=f"real CCP not found at {CCP_ROOT}"
)


@pytest.fixture(scope="module")
def histogram() -> dict:
    """One validated pass over all annotated pairs (image decoded, mask checked against it)."""
    return class_frequencies(CCP(CCP_ROOT, "all"), 59)


def test_all_1004_pairs_read_and_four_ids_never_used(histogram: dict) -> None:
    assert histogram["images"] == 1004
    pixels = np.asarray(histogram["pixels"])
    assert pixels[list(NEVER_USED_IDS)].tolist() == [0, 0, 0, 0]
    others = np.delete(pixels, list(NEVER_USED_IDS))
    assert (others > 0).all()  # every other label occurs somewhere
    assert histogram["ignored_pixels"] == 0  # CCP has no void label
    names = read_label_names(CCP_ROOT)
    assert [names[i] for i in NEVER_USED_IDS] == ["clogs", "intimate", "panties", "swimwear"]


def test_split_is_fixed_and_documented() -> None:
    train, val = CCP(CCP_ROOT, "train"), CCP(CCP_ROOT, "val")
    assert len(train) == 804 and len(val) == 200
    assert not set(train.ids) & set(val.ids) and len(set(train.ids) | set(val.ids)) == 1004
    # Pinned: a change of the split would silently make results incomparable.
    assert val.ids[:6] == ["0003", "0009", "0013", "0014", "0020", "0026"]
    digest = hashlib.sha1(" ".join(val.ids).encode()).hexdigest()
    assert digest == "b914445b0da608cad73572f6184ecd201cd31002"


@pytest.fixture(scope="module")
def ccp_trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two batches of 8 real training photos at 64 px, overfitted for six epochs, no val loop.

    Returns the per-epoch training losses and the checkpoint, which predict.py uses below.
    """
    import hydra.utils
    import pytorch_lightning as pl
    from omegaconf import OmegaConf
    from torch.utils.data import DataLoader, Subset

    from seglab.run.build import build_task

    tmp = tmp_path_factory.mktemp("ccp_train")
    cfg = compose_train(
        [
            "data=ccp",
            f"data.root={CCP_ROOT}",
            "data.image_size=64",
            "data.crop_size=64",
            "data.batch_size=8",
            "data.num_workers=0",
            "optim.lr=0.003",
            "scheduler=none",
        ],
        output_dir=tmp,
    )
    pl.seed_everything(0)
    losses: list[float] = []

    class Record(pl.Callback):
        def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
            losses.append(float(trainer.callback_metrics["train/loss"]))

    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=6,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[Record()],
    )
    task = build_task(OmegaConf.to_container(cfg, resolve=True))
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.setup("fit")
    photos = Subset(datamodule.train_dataset, range(16))  # real reader, default augmentation
    trainer.fit(task, train_dataloaders=DataLoader(photos, batch_size=8, shuffle=False))
    ckpt = tmp / "ccp.ckpt"
    trainer.save_checkpoint(ckpt)
    return {"losses": losses, "ckpt": ckpt}


@pytest.mark.slow
def test_short_training_on_real_ccp_lowers_the_loss(ccp_trained: dict) -> None:
    losses = ccp_trained["losses"]
    assert len(losses) == 6
    assert losses[-1] < 0.6 * losses[0], losses


@pytest.mark.slow
def test_predict_real_ccp_photos_with_a_ccp_model(ccp_trained: dict, tmp_path: Path) -> None:
    """predict.py on real photos with the CCP-trained model: full-size masks in CCP's classes."""
    import csv

    from PIL import Image

    from seglab.cli.predict import predict
    from tests.test_predict import compose_predict

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("0001.jpg", "0002.jpg"):
        (photos / name).symlink_to(CCP_ROOT / "photos" / name)
    out = tmp_path / "out"
    cfg = compose_predict(
        [f"ckpt_path={ccp_trained['ckpt']}", f"input={photos}", f"output={out}", "infer=whole"]
    )
    written = predict(cfg)
    assert [p.name for p in written] == ["0001_mask.png", "0002_mask.png"]
    names = read_label_names(CCP_ROOT)
    for stem in ("0001", "0002"):
        with Image.open(CCP_ROOT / "photos" / f"{stem}.jpg") as photo:
            size = photo.size
        mask = Image.open(out / f"{stem}_mask.png")
        assert mask.mode == "P" and mask.size == size
        assert np.asarray(mask).max() < len(names)
        assert Image.open(out / f"{stem}_overlay.png").size == size
    with (out / "summary.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2
    assert set(names) <= set(rows[0])  # one share column per CCP class
    assert abs(sum(float(rows[0][n]) for n in names) - 1) < 1e-4


def test_mask_rcnn_fast_dev_run_on_real_ccp(tmp_path: Path) -> None:
    """Garment instances (connected components) from the real annotations train and score."""
    from seglab.run.pipeline import train
    from tests.test_mask_rcnn_train import TINY_MASK_RCNN

    overrides = [
        "data=ccp",
        f"data.root={CCP_ROOT}",
        "data.image_size=128",
        "data.crop_size=96",
        "data.batch_size=2",
        "data.num_workers=0",
        "trainer.fast_dev_run=true",
        "trainer.accelerator=cpu",
        *TINY_MASK_RCNN,
    ]
    seen, _ = train(compose_train(overrides, output_dir=tmp_path / "out"))
    assert seen["train/loss_mask"] > 0 and 0.0 <= seen["val/mAP"] <= 1.0, sorted(seen)
    assert 0.0 <= seen["val/mIoU"] <= 1.0
