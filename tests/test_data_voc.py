"""VOCSegmentation: reads the VOC layout like torchvision does, and names bad data precisely."""

from __future__ import annotations

import shutil
from pathlib import Path

import albumentations as A
import numpy as np
import pytest
import torch
from albumentations.pytorch import ToTensorV2
from omegaconf import OmegaConf
from PIL import Image
from torch.utils.data import DataLoader

from seglab.data.synthetic import ensure_synthetic_voc
from seglab.data.voc import VOCSegmentation, voc_palette
from seglab.errors import BadSampleError, DatasetNotFoundError
from tests.conftest import CONF_DIR

# The class names' one home: the data config.
VOC_CLASSES = tuple(OmegaConf.load(CONF_DIR / "data" / "voc.yaml").class_names)

N = 6  # the synthetic dataset's classes


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_synthetic_voc(
        tmp_path_factory.mktemp("voc"), num_train=12, num_val=4, image_size=64, seed=0
    )


@pytest.fixture()
def copy(root: Path, tmp_path: Path) -> Path:
    """A private copy to damage."""
    shutil.copytree(root / "VOCdevkit", tmp_path / "VOCdevkit")
    return tmp_path


def _base(root: Path) -> Path:
    return root / "VOCdevkit" / "VOC2012"


def test_sample_shapes_dtypes_and_values(root: Path) -> None:
    ds = VOCSegmentation(root, "train", num_classes=N)
    assert len(ds) == 12
    sample = ds[0]
    assert sample["id"] == "synth_000001"
    image, mask = sample["image"], sample["mask"]
    assert image.dtype == torch.float32 and image.shape == (3, 64, 64)
    assert image.min() >= 0.0 and image.max() <= 1.0
    assert mask.dtype == torch.int64 and mask.shape == (64, 64)
    assert set(mask.unique().tolist()) <= set(range(N)) | {255}
    raw = np.array(Image.open(_base(root) / "SegmentationClass" / "synth_000001.png"))
    assert np.array_equal(mask.numpy(), raw)


def test_matches_torchvision_reader(root: Path) -> None:
    from torchvision.datasets import VOCSegmentation as TVVOC

    for split in ("train", "val", "trainval"):
        ours = VOCSegmentation(root, split, num_classes=N)
        theirs = TVVOC(str(root), year="2012", image_set=split, download=False)
        assert len(ours) == len(theirs)
        for i in range(len(ours)):
            image, target = theirs[i]
            sample = ours[i]
            assert np.array_equal(sample["mask"].numpy(), np.array(target))
            pixels = (sample["image"] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
            assert np.array_equal(pixels, np.array(image))


def test_albumentations_transform(root: Path) -> None:
    transform = A.Compose([A.HorizontalFlip(p=1.0), A.Normalize(), ToTensorV2()])
    plain = VOCSegmentation(root, "val", num_classes=N)[0]
    sample = VOCSegmentation(root, "val", transform, num_classes=N)[0]
    assert sample["image"].dtype == torch.float32 and sample["image"].shape == (3, 64, 64)
    assert sample["mask"].dtype == torch.int64
    assert torch.equal(sample["mask"], plain["mask"].flip(-1))
    batch = next(iter(DataLoader(VOCSegmentation(root, "val", transform, num_classes=N), 4)))
    assert batch["image"].shape == (4, 3, 64, 64) and batch["mask"].shape == (4, 64, 64)
    assert batch["id"] == [f"synth_{i:06d}" for i in range(13, 17)]


def test_transform_without_to_tensor(root: Path) -> None:
    sample = VOCSegmentation(root, "val", A.Compose([A.Normalize()]), num_classes=N)[0]
    assert sample["image"].shape == (3, 64, 64) and sample["mask"].dtype == torch.int64


@pytest.mark.parametrize("level", ["", "VOCdevkit", "VOCdevkit/VOC2012"])
def test_root_may_be_any_level(root: Path, level: str) -> None:
    ds = VOCSegmentation(root / level if level else root, "val", num_classes=N)
    assert ds.base == _base(root)
    assert len(ds) == 4


def test_missing_root_explains_layout_and_source(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetNotFoundError) as info:
        VOCSegmentation(missing)
    message = str(info.value)
    assert str(missing) in message
    assert "VOCdevkit/" in message and "JPEGImages/<id>.jpg" in message
    assert "SegmentationClass/<id>.png" in message
    assert "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/" in message
    assert "VOCtrainval_11-May-2012.tar" in message


def test_empty_root_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="no VOCdevkit/VOC2012"):
        VOCSegmentation(tmp_path)


def test_missing_folder_is_named(copy: Path) -> None:
    shutil.rmtree(_base(copy) / "SegmentationClass")
    with pytest.raises(DatasetNotFoundError, match="SegmentationClass") as info:
        VOCSegmentation(copy, num_classes=N)
    assert str(_base(copy) / "SegmentationClass") in str(info.value)


def test_missing_split_file_lists_the_splits(copy: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="trainaug.txt") as info:
        VOCSegmentation(copy, "trainaug", num_classes=N)
    assert "'train'" in str(info.value)


@pytest.mark.parametrize(
    "what", ["JPEGImages/synth_000003.jpg", "SegmentationClass/synth_000003.png"]
)
def test_split_naming_a_missing_file(copy: Path, what: str) -> None:
    (_base(copy) / what).unlink()
    with pytest.raises(DatasetNotFoundError, match="synth_000003") as info:
        VOCSegmentation(copy, "train", num_classes=N)
    assert str(_base(copy) / what) in str(info.value)


def test_truncated_jpeg(copy: Path) -> None:
    path = _base(copy) / "JPEGImages" / "synth_000002.jpg"
    path.write_bytes(path.read_bytes()[:600])
    ds = VOCSegmentation(copy, "train", num_classes=N)
    ds[0]  # the neighbours still load
    with pytest.raises(BadSampleError, match="synth_000002.jpg") as info:
        ds[1]
    assert str(path) in str(info.value)


def test_mask_of_the_wrong_size(copy: Path) -> None:
    path = _base(copy) / "SegmentationClass" / "synth_000002.png"
    small = Image.open(path).resize((32, 32), Image.Resampling.NEAREST)
    small.save(path)
    with pytest.raises(BadSampleError, match=r"synth_000002.png.*32x32.*64x64"):
        VOCSegmentation(copy, "train", num_classes=N)[1]


def test_label_out_of_range(copy: Path) -> None:
    path = _base(copy) / "SegmentationClass" / "synth_000002.png"
    with Image.open(path) as im:
        mask = np.array(im)
        palette = im.getpalette()
    mask[0, 0] = 30
    bad = Image.fromarray(mask)
    bad.putpalette(palette)
    bad.save(path)
    with pytest.raises(BadSampleError, match=r"synth_000002.png.*\[30\]"):
        VOCSegmentation(copy, "train", num_classes=N)[1]
    # The same file is fine for the 21-class VOC reading, where 30 is still out of range.
    with pytest.raises(BadSampleError):
        VOCSegmentation(copy, "train")[1]
    assert VOCSegmentation(copy, "train", num_classes=31)[1]["mask"][0, 0] == 30


def test_colour_mask_is_refused(copy: Path) -> None:
    path = _base(copy) / "SegmentationClass" / "synth_000002.png"
    Image.open(path).convert("RGB").save(path)
    with pytest.raises(BadSampleError, match=r"synth_000002.png.*'RGB'"):
        VOCSegmentation(copy, "train", num_classes=N)[1]


def test_voc_constants() -> None:
    assert len(VOC_CLASSES) == 21
    assert VOC_CLASSES[0] == "background" and VOC_CLASSES[15] == "person"
    palette = voc_palette()
    assert len(palette) == 256
    assert palette[:4] == [(0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0)]
    assert palette[15] == (192, 128, 128)
    assert palette[255] == (224, 224, 192)
    assert voc_palette(21) == palette[:21]
