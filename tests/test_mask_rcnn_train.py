"""`model=mask_rcnn` end to end: every dataset fixture, a short run that learns, eval.py's mAP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import datasets as D
from tests.conftest import TINY_DATA, compose_train, new_store, run_entry_point
from tests.test_datasets_train import PER_DATASET, SMALL

pytestmark = pytest.mark.slow

# torchvision's Mask R-CNN on a ResNet-18 FPN, with fewer proposals and sampled RoIs: the real
# model and losses, at a size 2 CPU cores train in seconds per step. The resize inside the model
# follows the data (64 px synthetic images stay 64 px).
TINY_MASK_RCNN = [
    "model=mask_rcnn",
    "model.variant=resnet_fpn",
    "model.backbone=resnet18",
    "+model.rpn_pre_nms_top_n_train=256",
    "+model.rpn_post_nms_top_n_train=128",
    "+model.rpn_pre_nms_top_n_test=128",
    "+model.rpn_post_nms_top_n_test=64",
    "+model.box_batch_size_per_image=64",
    # An untrained head keeps all 100 detections it may, and their mask head is most of an eval
    # step (bf16 emulated, 2 images: 85 s with 100, 12 s with 10); 64 px shapes need 16.
    "model.box_detections_per_img=16",
]
# Every dataset's fixture images are at most 64 px a side: the model sees them at 64 px, and the
# shared scale-and-crop pipeline keeps the whole image (no random scale, a 64 px crop), so the one
# training batch always holds its objects (a 32 px crop could miss them all: loss_mask 0).
WHOLE_IMAGE = ["~data.train_transforms.scale", "data.crop_size=64"]
SCALE_CROP = ("voc", "coco_stuff", "cityscapes", "ccp")  # conf/data/train_transforms/scale_crop
EVERY_DATASET = {
    name: [
        *(o for o in extra if not (name in SCALE_CROP and o.startswith("data.crop_size="))),
        *(WHOLE_IMAGE if name in SCALE_CROP else []),
        "model.min_size=64",
        "model.max_size=64",
    ]
    for name, extra in {**PER_DATASET, "lits": []}.items()
}
# Both precisions seglab chooses, forced, so a CPU without native bf16 still runs bf16-mixed.
PRECISIONS = ("32-true", "bf16-mixed")


@pytest.mark.parametrize("name", list(EVERY_DATASET))
def test_fast_dev_run_on_every_dataset(name: str, tmp_path: Path) -> None:
    from seglab.run.pipeline import train

    overrides = [
        f"data={name}",
        f"data.root={D.ROOT_MAKERS[name](tmp_path / name)}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "trainer.fast_dev_run=true",
        *SMALL,
        *EVERY_DATASET[name],
        *TINY_MASK_RCNN,
        "trainer.precision=32-true",
    ]
    seen, _ = train(compose_train(overrides, output_dir=tmp_path / "out"))
    assert seen["train/loss"] > 0 and seen["train/loss_mask"] > 0, sorted(seen)
    assert 0.0 <= seen["val/mIoU"] <= 1.0 and 0.0 <= seen["val/mAP"] <= 1.0, sorted(seen)


TRAIN = [
    *TINY_DATA,
    "data.prepare.num_train=32",
    "data.batch_size=2",  # 16 steps an epoch: 3 epochs of 8 left mAP at 0-0.006 (see below)
    *TINY_MASK_RCNN,
    "trainer.max_epochs=4",
    "optim.lr=0.01",
    "trainer.gradient_clip_val=5.0",  # from scratch, BatchNorm on 2 images: keep steps sane
    # Every detection scored, the untrained model's too. 3 epochs of 8 steps gave mAP 0.0 in
    # every epoch with one thread on an AVX-512 Xeon (xdist's), 0.006 in the last with two;
    # 4 epochs of 16: max 0.028 and 0.015, rising (untrained: 0.0).
    "model.box_score_thresh=0.0",
    "trainer.num_sanity_val_steps=0",
    "trainer.enable_progress_bar=false",
    "callbacks.mlflow_artifacts.num_overlay_images=2",
]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic shapes with TRAIN's 32 training images, in a root of their own: train.py's
    data.prepare would otherwise regenerate the session's shared 24-image set under other tests."""
    from seglab.data.synthetic import ensure_synthetic_voc

    return ensure_synthetic_voc(
        tmp_path_factory.mktemp("shapes32"), num_train=32, num_val=8, image_size=64, seed=0
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, shapes: Path) -> dict:
    """A 4-epoch train.py run of the tiny Mask R-CNN on the synthetic shapes, and the val/mAP of
    the same model before any training (same seed, same init, same val images)."""
    import hydra.utils
    import pytorch_lightning as pl
    from omegaconf import OmegaConf

    from seglab.run.build import build_task

    tmp = tmp_path_factory.mktemp("mask_rcnn")
    uri = new_store(tmp)
    args = [*TRAIN, f"data.root={shapes}", "trainer.precision=32-true"]
    proc = run_entry_point("train.py", args, tmp, tracking_uri=uri)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]

    cfg = compose_train(args, output_dir=tmp / "untrained")
    pl.seed_everything(cfg.seed)  # as train.py does before building the model
    task = build_task(OmegaConf.to_container(cfg, resolve=True))
    datamodule = hydra.utils.instantiate(cfg.data, targets="instances")
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    (untrained,) = trainer.validate(task, datamodule=datamodule, verbose=False)
    out = tmp / "run"
    return {
        "out": out,
        "uri": uri,
        "run_id": json.loads((out / "mlflow_run.json").read_text())["run_id"],
        "untrained": untrained,
        "stdout": proc.stdout,
    }


def test_training_raises_map_and_logs_both_metric_families(trained: dict) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(trained["uri"])
    history = {
        key: [m.value for m in sorted(client.get_metric_history(trained["run_id"], key), key=lambda m: m.step)]
        for key in ("val/mAP", "val/mAP50", "val/mAP75", "val/mIoU", "val/IoU/disc", "train/loss_mask")
    }  # fmt: skip
    assert all(len(values) == 4 for values in history.values()), history
    assert max(history["val/mAP"]) > trained["untrained"]["val/mAP"], (
        history,
        trained["untrained"],
    )
    assert history["val/mIoU"][-1] > trained["untrained"]["val/mIoU"]
    plots = {a.path for a in client.list_artifacts(trained["run_id"], "plots")}
    assert {"plots/val_overlays.png", "plots/confusion_matrix.png"} <= plots
    assert "val/mAP" in trained["stdout"]  # the console summary lists it


@pytest.fixture(params=PRECISIONS)
def trained_at(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A finished run at each precision: the 32-true run above, and a one-step bf16-mixed one on
    a set of its own (4 train, 2 val images): where bf16 is emulated (no AVX-512 BF16/AMX) a bf16
    convolution takes the slow reference path, ≈ 10× fp32, so its run stays as small as it can."""
    if request.param == "32-true":
        return request.getfixturevalue("trained")
    tmp = tmp_path_factory.mktemp("mask_rcnn_bf16")
    uri = new_store(tmp)
    args = [*TRAIN, f"data.root={tmp / 'shapes'}", "data.prepare.num_train=4",
            "data.prepare.num_val=2", f"trainer.precision={request.param}",
            "trainer.max_epochs=1", "callbacks.mlflow_artifacts=null"]  # fmt: skip
    proc = run_entry_point("train.py", args, tmp, tracking_uri=uri)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    out = tmp / "run"
    run_id = json.loads((out / "mlflow_run.json").read_text())["run_id"]
    return {"out": out, "uri": uri, "run_id": run_id}


def test_eval_reports_the_checkpoints_map(trained_at: dict, tmp_path: Path) -> None:
    """eval.py on the final checkpoint reproduces the last logged val/mAP and val/mIoU, at the
    precision the run trained at (recorded in the checkpoint), whatever the CPU's own choice."""
    from mlflow.tracking import MlflowClient

    ckpt = trained_at["out"] / "checkpoints" / "last.ckpt"
    proc = run_entry_point("eval.py", [f"ckpt_path={ckpt}", "progress_bar=false"], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "test/mAP50" in proc.stdout
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())["metrics"]
    client = MlflowClient(trained_at["uri"])
    for key in ("mAP", "mIoU"):
        logged = max(
            client.get_metric_history(trained_at["run_id"], f"val/{key}"), key=lambda m: m.step
        )
        assert metrics[f"test/{key}"] == pytest.approx(logged.value, abs=1e-6), key


# predict.py and export.py handle Mask R-CNN checkpoints: tests/test_mask_rcnn_predict.py.
