"""Every semantic architecture through every entry point, under both precisions seglab chooses:
train → eval (reproduces the logged val/mIoU) → predict → export (parity with the checkpoint).

In process, on the tiny synthetic set, for a few steps: the point is that each architecture's
checkpoint goes through every tool and scores the same everywhere, not that it learns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
from PIL import Image
from torch.utils.data import DataLoader

from seglab.cli.evaluate import evaluate
from seglab.cli.predict import predict
from seglab.cli.train import train
from seglab.data.io import read_image
from seglab.data.transforms import build_transform
from seglab.export import export_checkpoint
from seglab.tasks.checkpoint import load_task
from tests.conftest import CONF_DIR, compose_entry, compose_train, new_store, tiny_run

pytestmark = pytest.mark.slow

SEMANTIC_ARCHS = sorted(
    p.stem
    for p in (CONF_DIR / "model").glob("*.yaml")
    if not p.stem.startswith("_")
    and "task: instance" not in p.read_text()
    # torchvision's models: tests/test_torchvision_models.py (one precision each: ResNet-50)
    and "_torchvision" not in p.read_text()
)
# bf16-mixed forced, so a CPU without native bf16 exercises that path too (slower, tiny sizes).
PRECISIONS = ("32-true", "bf16-mixed")
RUN = [*tiny_run(train_batches=2, stub=False, precision=None), "data.batch_size=4"]
# PAN's pyramid attention halves its deepest (1/16) features 3 times: 128 px at least.
IMAGE_SIZE = {"pan": 128}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One MLflow store for the module (creating a sqlite store costs seconds)."""
    return new_store(tmp_path_factory.mktemp("mlflow"))


@pytest.fixture(scope="module")
def synthetic_roots(tiny_synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory):
    """The tiny synthetic set at 64 px, and at a larger size where an architecture needs it."""
    from seglab.data.synthetic import ensure_synthetic_voc

    made: dict[int, Path] = {64: tiny_synthetic_root}

    def root(size: int) -> Path:
        if size not in made:
            made[size] = ensure_synthetic_voc(
                tmp_path_factory.mktemp(f"synthetic{size}"), 24, 8, image_size=size, seed=0
            )
        return made[size]

    return root


def _trainer_mask(ckpt: Path, image_path: Path, precision: str) -> np.ndarray:
    """The class map Lightning's own Trainer computes for one image at `precision`."""
    task = load_task(ckpt)
    data = task.hparams["data"]
    normalise = build_transform(None, data["mean"], data["std"])
    tensor = normalise(image=read_image(image_path))["image"]
    trainer = pl.Trainer(
        accelerator="cpu",
        precision=precision,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    (logits,) = trainer.predict(task, DataLoader([tensor], batch_size=1))
    return logits[0].float().argmax(dim=0).numpy()


def test_every_smp_architecture_has_a_config() -> None:
    expected = {"unet", "unetplusplus", "fpn", "pspnet", "deeplabv3", "deeplabv3plus", "linknet",
                "manet", "pan", "upernet", "segformer"}  # fmt: skip
    assert expected <= set(SEMANTIC_ARCHS)


def through_every_entry_point(
    model: list[str], precision: str, root: Path, store: str, tmp_path: Path
) -> None:
    """train → eval (reproduces the logged val/mIoU) → predict (Lightning's mask) → export
    (parity) for the model config `model` (overrides) at `precision`, on the synthetic set."""
    out = tmp_path / "train"
    cfg = compose_train(
        [f"trainer.precision={precision}", f"data.root={root}", f"logger.tracking_uri={store}",
         *RUN, *model],  # model last: its data.image_size wins over RUN's
        output_dir=out,
    )  # fmt: skip
    logged_miou = train(cfg)  # one epoch: the best val/mIoU is the last one
    ckpt = out / "checkpoints" / "last.ckpt"
    assert logged_miou is not None and ckpt.is_file()

    scored = evaluate(
        compose_entry(
            "eval",
            [f"ckpt_path={ckpt}", "log_mlflow=false", "progress_bar=false", "data.num_workers=0"],
            output_dir=tmp_path / "eval",
        )
    )
    # Same weights, images, batches and precision as the validation that logged it.
    assert scored["test/mIoU"] == pytest.approx(logged_miou, abs=1e-6)

    image = next((root / "VOCdevkit" / "VOC2012" / "JPEGImages").glob("*.jpg"))
    masks = predict(
        compose_entry(
            "predict",
            [f"ckpt_path={ckpt}", f"input={image}", f"output={tmp_path / 'pred'}",
             "progress_bar=false"],
            output_dir=tmp_path / "predict",
        )
    )  # fmt: skip
    with Image.open(image) as source, Image.open(masks[0]) as mask:
        assert mask.size == source.size
        predicted = np.asarray(mask)
    # predict.py runs at the checkpoint's precision, as Lightning's Trainer does.
    np.testing.assert_array_equal(predicted, _trainer_mask(ckpt, image, precision))

    exported, info = export_checkpoint(ckpt, "torchscript", output=tmp_path / "model.pt")
    assert exported.is_file() and info.is_file()  # parity with the checkpoint checked inside


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("arch", SEMANTIC_ARCHS)
def test_architecture_through_every_entry_point(
    arch: str, precision: str, synthetic_roots, store: str, tmp_path: Path
) -> None:
    size = IMAGE_SIZE.get(arch, 64)
    model = [f"model={arch}", f"data.image_size={size}"]
    through_every_entry_point(model, precision, synthetic_roots(size), store, tmp_path)
