"""The data configs: shared keys in conf/data/_base.yaml, augmentations as named steps, the
experiment presets found without a conf/experiment link."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import albumentations as A
import hydra.utils
import pytest
from omegaconf import OmegaConf

from seglab.data.transforms import instantiate_steps, pipeline_steps
from seglab.errors import ConfigError
from seglab.inference.view import ValidationView
from seglab.run.prepare import check_config
from tests.conftest import ROOT, compose_train

DATASETS = ["voc", "coco_stuff", "cityscapes", "lits", "inria", "ccp", "synthetic"]


def _data(overrides: list[str]) -> dict:
    return OmegaConf.to_container(compose_train(overrides).data, resolve=True)


def _pipeline(overrides: list[str]) -> list[str]:
    """Class names of the built training pipeline's augmentation steps (normalise/tensor cut)."""
    datamodule = hydra.utils.instantiate(compose_train(overrides).data)
    return [type(t).__name__ for t in datamodule.train_transform.transforms][:-2]


def test_base_is_not_a_dataset(tmp_path: Path) -> None:
    cfg = compose_train(["data=_base"], output_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"data.name is not set: conf/data/_base.yaml"):
        check_config(cfg)


@pytest.mark.parametrize("name", DATASETS)
def test_every_dataset_takes_the_shared_keys(name: str) -> None:
    data = _data([f"data={name}"])
    assert data["_target_"] == "seglab.data.datamodule.SegmentationDataModule"
    assert data["ignore_index"] == 255 and data["skip_bad"] is False
    assert data["cache_dir"].endswith("data/.cache") and data["val_batch_size"] in (None, 2)
    assert data["dataset"]["_partial_"] is True and data["dataset"]["root"] == data["root"]
    assert data["dataset"]["skip_bad"] is False and data["dataset"]["ignore_index"] == 255
    assert isinstance(data["train_transforms"], dict) and isinstance(data["val_transforms"], dict)


def test_pinned_values_per_dataset() -> None:
    """What the old, self-contained configs composed to (checked key for key when _base.yaml
    came in): a few values per dataset, so a change to the base shows up here."""
    voc, coco, cs = _data(["data=voc"]), _data(["data=coco_stuff"]), _data(["data=cityscapes"])
    lits, inria, ccp = _data(["data=lits"]), _data(["data=inria"]), _data(["data=ccp"])
    synthetic = _data(["data=synthetic"])
    assert voc["mean"] == [0.485, 0.456, 0.406] and voc["std"] == [0.229, 0.224, 0.225]
    assert voc["splits"] == {"train": "train", "val": "val", "test": "val"}
    assert (voc["batch_size"], voc["num_workers"], voc["in_channels"]) == (8, 4, 3)
    assert coco["splits"] == {"train": "train2017", "val": "val2017", "test": "val2017"}
    assert coco["instance"] == {
        "thing_classes": list(range(80)),
        "min_area": 16,
        "background_class": None,
    }
    assert cs["val_batch_size"] == 2 and cs["val_transforms"] == {}
    assert lits["mean"] == [0.5, 0.5, 0.5] and lits["max_pixel_value"] == 1.0
    assert lits["train_transforms"] == {} and lits["dataset"]["cache_dir"] == lits["cache_dir"]
    assert inria["dataset"]["crop_size"] == 512 and inria["instance"]["background_class"] == 0
    assert ccp["val_pad_size"] == 640 and ccp["dataset"]["val_size"] == 200
    assert (synthetic["batch_size"], synthetic["num_workers"]) == (16, 2)
    assert synthetic["instance"]["min_area"] == 4 and synthetic["prepare"]["num_train"] == 1000
    # The shared training pipeline, written once (conf/data/train_transforms/scale_crop.yaml).
    steps = ["scale", "pad", "crop", "hflip", "jitter"]
    for data in (voc, coco, cs):
        assert list(data["train_transforms"]) == steps
        assert data["train_transforms"]["scale"]["scale_limit"] == [-0.5, 1.0]
        assert data["train_transforms"]["pad"]["fill_mask"] == 255
        assert data["train_transforms"]["crop"] == {
            "_target_": "albumentations.RandomCrop", "height": 512, "width": 512
        }  # fmt: skip
    assert list(ccp["train_transforms"]) == ["resize", *steps]  # resized first
    assert list(ccp["val_transforms"]) == ["resize", "pad"]
    assert voc["val_transforms"]["pad"]["min_height"] == 512
    assert coco["val_transforms"]["pad"]["min_height"] == 640
    assert list(inria["train_transforms"]) == ["hflip", "vflip", "rotate90", "jitter"]
    assert inria["train_transforms"]["jitter"]["hue"] == 0.02


def test_one_step_is_changed_or_left_out_by_name() -> None:
    full = ["RandomScale", "PadIfNeeded", "RandomCrop", "HorizontalFlip", "ColorJitter"]
    assert _pipeline(["data=voc"]) == full
    overrides = [
        "data=voc",
        "~data.train_transforms.jitter",
        "data.train_transforms.crop.height=384",
    ]
    datamodule = hydra.utils.instantiate(compose_train(overrides).data)
    steps = datamodule.train_transform.transforms
    assert [type(t).__name__ for t in steps][:-2] == full[:-1]
    crop = next(t for t in steps if isinstance(t, A.RandomCrop))
    assert (crop.height, crop.width) == (384, 512)
    assert _pipeline(["data=voc", "data.train_transforms.hflip=null"]) == [*full[:3], full[4]]
    assert _pipeline(["data=voc", "data.train_transforms=null"]) == []
    assert _pipeline(["data=synthetic", "debug=overfit"]) == []


def test_steps_as_mapping_or_list() -> None:
    flip = {"_target_": "albumentations.HorizontalFlip", "p": 0.5}
    assert pipeline_steps({"a": flip, "b": None}) == [flip]
    assert pipeline_steps([flip, None]) == [flip] and pipeline_steps(None) == []
    assert [type(s).__name__ for s in instantiate_steps({"flip": flip})] == ["HorizontalFlip"]
    with pytest.raises(ConfigError, match="names its steps"):
        pipeline_steps(flip)


def test_predict_view_reads_the_named_val_steps() -> None:
    view = ValidationView.from_data_config(_data(["data=ccp"]))
    assert [type(s).__name__ for s in view.steps] == ["LongestMaxSize", "PadIfNeeded"]


def test_experiment_presets_compose_without_a_link(tmp_path: Path) -> None:
    assert not (ROOT / "conf" / "experiment").exists()
    cfg = compose_train(["experiment=synthetic_unet"], output_dir=tmp_path)
    assert cfg.trainer.max_epochs == 26 and cfg.logger.experiment_name == "synthetic-unet"
    # As a user runs it, from another folder (train.py points SEGLAB_ROOT at itself).
    env = {k: v for k, v in os.environ.items() if k != "SEGLAB_ROOT"}
    cmd = [sys.executable, str(ROOT / "train.py"), "experiment=synthetic_unet", "--cfg", "job"]
    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    job = OmegaConf.create(out.stdout)
    assert job.trainer.max_epochs == 26 and job.logger.experiment_name == "synthetic-unet"


@pytest.mark.parametrize(
    ("shape", "mean", "std", "max_pixel_value"),
    [
        ((33, 17, 3), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 255.0),
        ((33, 17, 4), (0.1, 0.2, 0.3, 0.4), (0.2, 0.3, 0.2, 0.3), 255.0),
        ((33, 17, 1), (0.5,), (0.2,), 255.0),
        ((33, 17, 3), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 1.0),
    ],
)
def test_normalize_equals_albumentations_to_the_bit(
    shape: tuple[int, ...], mean: tuple, std: tuple, max_pixel_value: float
) -> None:
    import numpy as np

    from seglab.data.transforms import Normalize

    rng = np.random.default_rng(0)
    for image in (rng.integers(0, 256, shape, dtype=np.uint8), rng.random(shape, np.float32)):
        ours = Normalize(mean=mean, std=std, max_pixel_value=max_pixel_value)(image=image)
        theirs = A.Normalize(mean=mean, std=std, max_pixel_value=max_pixel_value)(image=image)
        assert ours["image"].dtype == theirs["image"].dtype
        np.testing.assert_array_equal(ours["image"], theirs["image"])


def test_training_images_are_normalised_on_the_device_to_the_bit(
    tiny_synthetic_root: Path, tmp_path: Path
) -> None:
    """data.normalize_on_device (the default): training images leave the workers as uint8 and
    the task's transfer makes of them exactly the floats the workers give with it off, for a
    batch and for a list (Mask R-CNN's images of several sizes); validation items stay float."""
    import torch

    from seglab.run.build import build_task
    from tests.conftest import TINY_DATA
    from tests.stub_net import STUB_NET

    def first_batch(on_device: bool) -> tuple:
        overrides = [*TINY_DATA, f"data.root={tiny_synthetic_root}", *STUB_NET]
        cfg = compose_train([*overrides, f"data.normalize_on_device={on_device}"], tmp_path)
        datamodule = hydra.utils.instantiate(cfg.data)
        datamodule.setup("fit")
        torch.manual_seed(1)  # the same order and augmentations on both sides
        return cfg, datamodule, next(iter(datamodule.train_dataloader()))

    cfg, datamodule, raw = first_batch(True)
    _, _, worker = first_batch(False)
    assert raw["image"].dtype == torch.uint8 and worker["image"].dtype == torch.float32
    assert datamodule.val_dataset[0]["image"].dtype == torch.float32
    task = build_task(OmegaConf.to_container(cfg, resolve=True))
    images = list(raw["image"])
    moved = task.transfer_batch_to_device(raw, torch.device("cpu"), 0)
    assert moved["image"].dtype == torch.float32
    assert torch.equal(moved["image"], worker["image"])
    for normalized, expected in zip(task.normalized(images), worker["image"], strict=True):
        assert torch.equal(normalized, expected)


def test_float_images_are_still_normalised_in_the_workers() -> None:
    """Only 8-bit images wait for the device: float ones (CT in [0, 1]) leave the pipeline
    normalised, as before."""
    import numpy as np
    import torch

    from seglab.data.transforms import build_transform

    image = np.random.default_rng(2).random((9, 7, 3), np.float32)
    stats = ((0.2, 0.3, 0.4), (0.5, 0.6, 0.7), 1.0)
    deferred = build_transform([], *stats, uint8_on_device=True)(image=image)["image"]
    assert torch.equal(deferred, build_transform([], *stats)(image=image)["image"])


def test_device_normalisation_names_the_keys_when_channels_disagree() -> None:
    """A 4-band image against 3-channel data.mean/std: the error names the keys, not a gather's
    index error."""
    import torch

    from seglab.data.transforms import normalization_table, normalize_uint8

    table = normalization_table((0.5, 0.5, 0.5), (0.2, 0.2, 0.2))
    with pytest.raises(ConfigError, match=r"data\.mean/data\.std give 3 channels .* have 4"):
        normalize_uint8(torch.zeros(2, 4, 5, 5, dtype=torch.uint8), table)


def test_rotate90_draws_and_pixels_equal_albumentations() -> None:
    """Seeded alike, seglab's RandomRotate90 turns each image and mask exactly as
    albumentations' does (cv2 for up to 4 channels, numpy beyond)."""
    import numpy as np

    from seglab.data.transforms import RandomRotate90

    rng = np.random.default_rng(1)
    for channels in ((), (1,), (3,), (4,), (6,)):
        image = rng.integers(0, 256, (12, 7, *channels), dtype=np.uint8)
        mask = rng.integers(0, 5, (12, 7), dtype=np.uint8)
        ours = A.Compose([RandomRotate90(p=0.75)], seed=3)
        theirs = A.Compose([A.RandomRotate90(p=0.75)], seed=3)
        for _ in range(12):
            a, b = ours(image=image, mask=mask), theirs(image=image, mask=mask)
            np.testing.assert_array_equal(a["image"], b["image"])
            np.testing.assert_array_equal(a["mask"], b["mask"])


def test_augmentations_follow_the_seed_and_differ_between_workers() -> None:
    """`seed` fixes the augmentations (albumentations' Compose keeps its own generator), and
    DataLoader workers, forked with one copy of it, still draw different ones."""
    import numpy as np
    import torch
    from torch.utils.data import DataLoader

    from seglab.data.transforms import build_transform

    image = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)

    def crops(seed: int) -> list:
        torch.manual_seed(seed)
        transform = build_transform([A.RandomCrop(8, 8)], (0.5,) * 3, (0.25,) * 3)
        return [transform(image=image)["image"] for _ in range(4)]

    assert all(torch.equal(a, b) for a, b in zip(crops(7), crops(7), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(crops(7), crops(8), strict=True))

    transform = build_transform([A.RandomCrop(8, 8)], (0.5,) * 3, (0.25,) * 3)
    data = [image] * 4

    class Crops(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(data)

        def __getitem__(self, index: int) -> torch.Tensor:
            return transform(image=data[index])["image"]

    def load(seed: int) -> list:
        loader = DataLoader(
            Crops(), batch_size=None, num_workers=2, generator=torch.Generator().manual_seed(seed)
        )
        return list(loader)

    first = load(3)
    assert not torch.equal(first[0], first[1])  # worker 0's first crop vs worker 1's
    assert all(torch.equal(a, b) for a, b in zip(first, load(3), strict=True))
