"""Instance targets from every dataset layout, the pasted class map, the Mask R-CNN factory."""

from __future__ import annotations

from pathlib import Path

import hydra.utils
import numpy as np
import pytest
import torch
from PIL import Image

from seglab.data.instances import (
    TARGET_KEY,
    InstanceSpec,
    collate_instances,
    connected_instances,
    instance_target,
)
from seglab.errors import ConfigError
from tests import datasets as D
from tests.conftest import compose_train

SMALL = {
    "voc": ["data.crop_size=32", "data.val_pad_size=64"],
    "coco_stuff": ["data.crop_size=32", "data.val_pad_size=64"],
    "cityscapes": ["data.crop_size=32"],
    "inria": ["data.crop_size=32"],
    "ccp": ["data.image_size=64", "data.crop_size=32", "data.dataset.val_size=3"],
    "lits": [],
}
MAKERS = D.ROOT_MAKERS


def instance_datamodule(name: str, root: Path, tmp_path: Path, *extra: str):
    cfg = compose_train(
        [
            f"data={name}",
            f"data.root={root}",
            f"data.cache_dir={tmp_path / 'cache'}",
            "data.num_workers=0",
            *SMALL[name],
            *extra,
        ]
    )
    dm = hydra.utils.instantiate(cfg.data, targets="instances")
    dm.setup("fit")
    return dm


def assert_valid_target(item: dict, num_things: int) -> None:
    """Boxes inside the image and of positive size, one non-empty mask per box, labels 1..T."""
    target = item[TARGET_KEY]
    h, w = item["image"].shape[-2:]
    boxes, labels, masks = target["boxes"], target["labels"], target["masks"]
    n = len(labels)
    assert boxes.shape == (n, 4) and masks.shape == (n, h, w), (boxes.shape, masks.shape)
    assert boxes.dtype == torch.float32 and labels.dtype == torch.int64
    assert masks.dtype == torch.uint8
    if n:
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
        assert (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
        assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
        assert (masks.flatten(1).sum(1) > 0).all()
        assert labels.min() >= 1 and labels.max() <= num_things
        for box, mask in zip(boxes.long(), masks, strict=True):  # the box encloses its mask
            ys, xs = torch.nonzero(mask, as_tuple=True)
            assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


@pytest.mark.parametrize("name", list(MAKERS))
def test_targets_from_every_dataset_are_valid(name: str, tmp_path: Path) -> None:
    dm = instance_datamodule(name, MAKERS[name](tmp_path / name), tmp_path)
    things = len(dm.instance_spec.thing_classes)
    found = 0
    for dataset in (dm.train_dataset, dm.val_dataset):
        for i in range(len(dataset)):
            item = dataset[i]
            assert_valid_target(item, things)
            found += len(item[TARGET_KEY]["labels"])
    assert found > 0, f"{name}: no instance in the whole fixture"


def test_voc_objects_come_from_segmentation_object(tmp_path: Path) -> None:
    """One instance per object index, with the class found under it in SegmentationClass;
    a sample with no object gives an empty but valid target."""
    root = D.make_voc(tmp_path / "voc", sbd=False)
    base = root / "VOCdevkit" / "VOC2012"
    empty_id = (base / "ImageSets/Segmentation/val.txt").read_text().split()[0]
    for sub in ("SegmentationClass", "SegmentationObject"):
        path = base / sub / f"{empty_id}.png"
        blank = Image.fromarray(np.zeros_like(np.array(Image.open(path))))
        blank.putpalette(Image.open(path).getpalette())
        blank.save(path)
    dm = instance_datamodule("voc", root, tmp_path)
    for i in range(len(dm.val_dataset)):
        sid = dm.val_dataset.reader.ids[i]
        classes = np.array(Image.open(base / "SegmentationClass" / f"{sid}.png"))
        item = dm.val_dataset[i]
        labels = sorted(item[TARGET_KEY]["labels"].tolist())  # VOC thing class c → label c
        expected = sorted(int(v) for v in np.unique(classes) if v not in (0, 255))
        assert labels == expected, sid
        if sid == empty_id:
            assert item[TARGET_KEY]["boxes"].shape == (0, 4)
            assert item[TARGET_KEY]["masks"].shape == (0, *item["mask"].shape)


def test_cityscapes_instances_come_from_instance_ids(tmp_path: Path) -> None:
    root, labels = D.make_cityscapes(tmp_path / "cs")
    dm = instance_datamodule("cityscapes", root, tmp_path)
    reader = dm.val_dataset.reader
    train_id = {24: 11, 26: 13, 33: 18}  # person, car, bicycle in the fixture
    for i in range(len(reader)):
        _, mask = reader.load(i)
        masks, classes = reader.read_instances(i, mask, dm.instance_spec)
        raw = labels[reader.sample_id(i)]
        expected = sorted(t for lid, t in train_id.items() if (raw == lid).sum() >= 16)
        assert sorted(classes.tolist()) == expected
        for m, c in zip(masks, classes, strict=True):  # the instance is exactly its pixels
            lid = next(k for k, v in train_id.items() if v == c)
            assert np.array_equal(m.astype(bool), raw == lid)


def test_coco_instances_json_is_used_when_present(tmp_path: Path) -> None:
    root, _ = D.make_coco_stuff(tmp_path / "coco")
    dm = instance_datamodule("coco_stuff", root, tmp_path)
    from_maps = dm.val_dataset.reader.read_instances(
        0, dm.val_dataset.reader.load(0)[1], dm.instance_spec
    )
    D.make_coco_instances(root, "val2017")
    dm = instance_datamodule("coco_stuff", root, tmp_path)
    reader = dm.val_dataset.reader
    masks, classes = reader.read_instances(0, reader.load(0)[1], dm.instance_spec)
    assert classes.tolist() == [0, 16]  # person, dog (171-class ids); the crowd region left out
    assert [int(m.sum()) for m in masks] == [12 * 20, 12 * 20]  # the polygons, rasterised
    assert not np.array_equal(classes, from_maps[1])  # without the json: connected components


def test_connected_components_min_area_and_thing_classes() -> None:
    mask = np.zeros((20, 20), dtype=np.uint8)
    mask[1:5, 1:5] = 1  # 16 px
    mask[10:12, 10:12] = 1  # 4 px: below min_area
    mask[14:18, 1:19] = 2  # not a thing class
    mask[1:6, 12:19] = 3
    spec = InstanceSpec((1, 3), min_area=5)
    masks, classes = connected_instances(mask, spec)
    assert classes.tolist() == [1, 3] and [int(m.sum()) for m in masks] == [16, 35]
    empty, none = connected_instances(np.zeros((8, 8), np.uint8), spec)
    assert empty.shape == (0, 8, 8) and none.shape == (0,)


def test_augmentation_moves_masks_and_boxes_together(tmp_path: Path) -> None:
    """A random crop and flip: every box still encloses its (non-empty) mask, instances cut
    away entirely are dropped, and the class mask carries the same pixels."""
    root = D.make_ccp(tmp_path / "ccp")[0]
    dm = instance_datamodule("ccp", root, tmp_path, "data.crop_size=24")
    spec = dm.instance_spec
    for i in range(len(dm.train_dataset)):
        item = dm.train_dataset[i]
        assert_valid_target(item, len(spec.thing_classes))
        target = item[TARGET_KEY]
        for m, label in zip(target["masks"].bool(), target["labels"], strict=True):
            assert (item["mask"][m] == spec.thing_classes[int(label) - 1]).all()


def test_instance_target_drops_emptied_instances() -> None:
    masks = torch.zeros(2, 6, 6, dtype=torch.bool)
    masks[0, 2, 3] = True  # one pixel: box of size 1x1, never 0
    target = instance_target(masks, torch.tensor([4, 7]), InstanceSpec((7, 4)))
    assert target["boxes"].tolist() == [[3.0, 2.0, 4.0, 3.0]]
    assert target["labels"].tolist() == [2]  # class 4 is the second thing class


def test_collate_keeps_targets_and_ragged_images_as_lists() -> None:
    def sample(h: int) -> dict:
        return {
            "image": torch.zeros(3, h, 8),
            "mask": torch.zeros(h, 8, dtype=torch.long),
            TARGET_KEY: {"boxes": torch.zeros(0, 4)},
            "id": str(h),
            "group": 1,
        }

    same = collate_instances([sample(8), sample(8)])
    assert same["image"].shape == (2, 3, 8, 8) and isinstance(same[TARGET_KEY], list)
    ragged = collate_instances([sample(8), sample(6)])
    assert [t.shape[1] for t in ragged["image"]] == [8, 6] and ragged["group"].tolist() == [1, 1]


def test_spec_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match="data.instance.thing_classes"):
        InstanceSpec.from_config(None, 5)
    with pytest.raises(ConfigError, match=r"thing_classes=\[1, 9\]"):
        InstanceSpec.from_config({"thing_classes": [1, 9]}, 5)


# --- pasted class map and the scores over it ------------------------------------------------
def test_paste_highest_score_wins_and_fill() -> None:
    from seglab.tasks.instance import paste_instances

    masks = torch.zeros(2, 1, 4, 4)
    masks[0, 0, :, :2] = 0.9  # label 1 → class 3, score 0.5
    masks[1, 0, :, 1:3] = 0.8  # label 2 → class 5, score 0.7: wins on column 1
    pred = {"masks": masks, "labels": torch.tensor([1, 2]), "scores": torch.tensor([0.5, 0.7])}
    class_map = paste_instances(pred, torch.tensor([0, 3, 5]), (4, 4), fill=0)
    assert class_map[0].tolist() == [3, 5, 5, 0]


def test_unassigned_pixels_are_misses_not_hits() -> None:
    from seglab.metrics import ConfusionMatrix, segmentation_scores

    matrix = ConfusionMatrix(2, ignore_index=255, unassigned=True)
    target = torch.tensor([[0, 0, 1, 1]])
    matrix.update(torch.tensor([[0, 2, 1, 2]]), target)  # 2 = no class
    counts = matrix.compute()
    assert counts.tolist() == [[1, 0, 1], [0, 1, 1]]
    scores = segmentation_scores(counts, ["a", "b"])
    assert scores["IoU/a"] == pytest.approx(0.5) and scores["mIoU"] == pytest.approx(0.5)
    assert scores["aAcc"] == pytest.approx(0.5)


# --- the model factory -----------------------------------------------------------------------
def test_mask_rcnn_config_composes_with_sgd_and_warmup() -> None:
    cfg = compose_train(["model=mask_rcnn", "data=cityscapes"])
    assert cfg.model.task == "instance" and cfg.model.variant == "maskrcnn_resnet50_fpn_v2"
    assert cfg.model.weights is None and cfg.model.weights_backbone is None
    assert cfg.optim._target_ == "torch.optim.SGD" and cfg.scheduler.warmup_ratio > 0
    assert list(cfg.model.thing_classes) == [11, 12, 13, 14, 15, 16, 17, 18]
    assert compose_train(["model=mask_rcnn", "optim=adamw"]).optim._target_.endswith("AdamW")
    assert compose_train(["model=unet"]).optim._target_.endswith("AdamW")  # unchanged default


@pytest.mark.parametrize("variant", ["maskrcnn_resnet50_fpn_v2", "maskrcnn_resnet50_fpn"])
def test_torchvision_variants_are_sized_to_the_things(variant: str) -> None:
    from seglab.models import build_mask_rcnn

    model = build_mask_rcnn([1, 2, 3], variant=variant, min_size=64, max_size=64)
    assert model.roi_heads.box_predictor.cls_score.out_features == 4  # 3 things + background
    assert model.roi_heads.mask_predictor.mask_fcn_logits.out_channels == 4
    assert model.transform.min_size == (64,)


def test_offline_weights_are_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import urllib.error

    import torchvision.models._api as api

    from seglab.models import build_mask_rcnn

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(api, "load_state_dict_from_url", offline)
    with pytest.raises(ConfigError, match=r"(?s)model.weights='DEFAULT'.*weights=null"):
        build_mask_rcnn([1], weights="DEFAULT")
    with pytest.raises(ConfigError, match=r"model.weights_backbone='DEFAULT'"):
        build_mask_rcnn([1], variant="resnet_fpn", backbone="resnet18", weights_backbone="DEFAULT")


def test_factory_errors_name_the_key() -> None:
    from seglab.models import build_mask_rcnn

    with pytest.raises(ConfigError, match="model.variant"):
        build_mask_rcnn([1], variant="mask_rcnn_x")
    with pytest.raises(ConfigError, match="data.in_channels=5"):
        build_mask_rcnn([1], in_channels=5)
    with pytest.raises(ConfigError, match="model.backbone"):
        build_mask_rcnn([1], variant="resnet_fpn", backbone="vgg16")


def test_coco_weights_heads_are_replaced() -> None:
    """With COCO weights the 91-class heads are swapped for the data's (no download here:
    the replacement is applied to a 91-class model as torchvision builds it)."""
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    from seglab.models.mask_rcnn import _replace_heads

    model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91)
    _replace_heads(model, 6)
    assert model.roi_heads.box_predictor.bbox_pred.out_features == 24
    assert model.roi_heads.mask_predictor.mask_fcn_logits.out_channels == 6


def test_a_batch_with_an_empty_target_trains(tmp_path: Path) -> None:
    """An image without instances next to one with: finite losses, gradients everywhere."""
    from omegaconf import OmegaConf

    from seglab.run.build import build_task
    from tests.test_mask_rcnn_train import TINY_MASK_RCNN

    cfg = compose_train([*TINY_MASK_RCNN, "data.image_size=64"], output_dir=tmp_path)
    task = build_task(OmegaConf.to_container(cfg, resolve=True))
    masks = torch.zeros(1, 64, 64, dtype=torch.bool)
    masks[0, 10:30, 12:40] = True
    spec = InstanceSpec((1, 2, 3, 4, 5))
    targets = [
        instance_target(masks, torch.tensor([2]), spec),
        instance_target(
            torch.zeros(0, 64, 64, dtype=torch.bool), torch.zeros(0, dtype=torch.long), spec
        ),
    ]
    batch = {"image": torch.randn(2, 3, 64, 64), TARGET_KEY: targets}
    task.train()
    loss = task.training_step(batch, 0)
    loss.backward()
    assert torch.isfinite(loss) and loss > 0
