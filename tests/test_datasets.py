"""The six readers on fixtures in their official formats: exact labels, splits, bad input."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from scipy.io import savemat

from seglab.data.base import BadSampleWarning
from seglab.data.ccp import CCP, ccp_split, read_label_names
from seglab.data.cityscapes import LABEL_TO_TRAIN, Cityscapes
from seglab.data.coco_stuff import DROPPED_RAW_IDS, COCOStuff
from seglab.data.inria import InriaAerial
from seglab.data.lits import LiTS, window
from seglab.data.voc import VOCSegmentation, read_sbd_mask
from seglab.errors import BadSampleError, DatasetNotFoundError
from seglab.inference.sliding import window_starts
from tests import datasets as D
from tests.conftest import CONF_DIR

# The class names' one home is the data config; the reader's id mapping must agree with it.
COCO_CLASSES = tuple(OmegaConf.load(CONF_DIR / "data" / "coco_stuff.yaml").class_names)


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("datasets")
    return {
        "voc": D.make_voc(base / "voc"),
        "coco": D.make_coco_stuff(base / "coco"),
        "coco_converted": D.make_coco_stuff(base / "coco_conv", converted=True),
        "cityscapes": D.make_cityscapes(base / "cityscapes"),
        "lits": D.make_lits(base / "lits"),
        "inria": D.make_inria(base / "inria"),
        "ccp": D.make_ccp(base / "ccp"),
        "cache": base / "cache",
    }


# --- VOC + SBD ----------------------------------------------------------------------------
def test_voc_matches_torchvision_with_21_classes(roots: dict) -> None:
    from torchvision.datasets import VOCSegmentation as TVVOC

    ours = VOCSegmentation(roots["voc"], "val")
    theirs = TVVOC(str(roots["voc"]), year="2012", image_set="val", download=False)
    assert len(ours) == len(theirs) == 3
    for i in range(len(ours)):
        assert np.array_equal(ours[i]["mask"].numpy(), np.array(theirs[i][1]))


def test_voc_trainaug_is_train_plus_sbd_minus_val(roots: dict) -> None:
    root = roots["voc"]
    ds = VOCSegmentation(root, "trainaug", sbd_root=root / "benchmark_RELEASE")
    voc_train = VOCSegmentation(root, "train").ids
    voc_val = VOCSegmentation(root, "val").ids
    assert set(ds.ids) == set(voc_train) | {"2008_000001", "2008_000002", "2008_000003"}
    assert not set(ds.ids) & set(voc_val) and len(ds.ids) == len(set(ds.ids))
    i = ds.ids.index("2008_000002")  # SBD-only: mask from the .mat GTcls struct
    mat = root / "benchmark_RELEASE" / "dataset" / "cls" / "2008_000002.mat"
    assert ds.sample_paths(i)["mask"] == mat
    assert np.array_equal(ds[i]["mask"].numpy(), read_sbd_mask(mat))
    # An id in both keeps VOC's own mask.
    assert ds.sample_paths(ds.ids.index(voc_train[0]))["mask"].suffix == ".png"


def test_voc_trainaug_from_converted_segmentation_class_aug(roots: dict, tmp_path: Path) -> None:
    """mmseg's converted form: ImageSets/Segmentation/trainaug.txt + SegmentationClassAug PNGs."""
    root = tmp_path / "voc"
    shutil.copytree(roots["voc"] / "VOCdevkit", root / "VOCdevkit")
    base = root / "VOCdevkit" / "VOC2012"
    mask = np.full((40, 56), 7, np.uint8)
    D._png(base / "SegmentationClassAug" / "2008_000009.png", mask, mode="L")
    D._jpeg(base / "JPEGImages" / "2008_000009.jpg", np.zeros((40, 56, 3), np.uint8))
    (base / "ImageSets" / "Segmentation" / "trainaug.txt").write_text("2007_000000\n2008_000009\n")
    ds = VOCSegmentation(root, "trainaug")
    assert ds.sample_paths(1)["mask"].parent.name == "SegmentationClassAug"
    assert ds.sample_paths(0)["mask"].parent.name == "SegmentationClass"
    assert (ds[1]["mask"] == 7).all()


def test_voc_trainaug_without_sbd_says_how(roots: dict) -> None:
    with pytest.raises(DatasetNotFoundError, match="data.sbd_root"):
        VOCSegmentation(roots["voc"], "trainaug")


# --- COCO-Stuff ---------------------------------------------------------------------------
def test_coco_stuff_182_to_171(roots: dict) -> None:
    root, raw = roots["coco"]
    ds = COCOStuff(root, "train2017")
    assert len(ds) == 3 and len(COCO_CLASSES) == 171 and len(DROPPED_RAW_IDS) == 11
    expected = {0: 0, 24: 23, 26: 24, 105: 94, 181: 170, 11: 255, 255: 255}
    for i, sid in enumerate(ds.ids):
        mask = ds[i]["mask"].numpy()
        for raw_value, train_id in expected.items():
            assert (mask[raw[sid] == raw_value] == train_id).all(), raw_value
    assert COCO_CLASSES[23] == "giraffe" and COCO_CLASSES[24] == "backpack"
    assert COCO_CLASSES[170] == "wood" and "street sign" not in COCO_CLASSES


def test_coco_stuff_converted_files_read_as_they_are(roots: dict) -> None:
    raw_ds = COCOStuff(roots["coco"][0], "val2017")
    converted = COCOStuff(roots["coco_converted"][0], "val2017")
    assert converted.converted and converted.sample_paths(0)["mask"].name.endswith(
        "_labelTrainIds.png"
    )
    for i in range(len(raw_ds)):
        assert torch.equal(raw_ds[i]["mask"], converted[i]["mask"])


def test_coco_stuff_unknown_raw_value_names_the_file(roots: dict, tmp_path: Path) -> None:
    root = tmp_path / "coco"
    shutil.copytree(roots["coco"][0], root)
    ds = COCOStuff(root, "val2017")
    path = ds.sample_paths(0)["mask"]
    mask = np.array(Image.open(path))
    mask[5, 5] = 200
    Image.fromarray(mask).save(path)
    with pytest.raises(BadSampleError, match=r"\[200\]") as info:
        ds[0]
    assert str(path) in str(info.value)


# --- Cityscapes ---------------------------------------------------------------------------
def test_cityscapes_matches_torchvision_and_the_train_id_table(roots: dict) -> None:
    from torchvision.datasets import Cityscapes as TVCityscapes

    root, _ = roots["cityscapes"]
    table = {c.id: (c.train_id if 0 <= c.train_id < 255 else 255) for c in TVCityscapes.classes}
    table = {k: v for k, v in table.items() if k >= 0}
    assert {k: v for k, v in table.items() if v != 255} == LABEL_TO_TRAIN
    lut = np.full(256, 255, dtype=np.uint8)
    for k, v in table.items():
        lut[k] = v
    for split in ("train", "val"):
        ours = Cityscapes(root, split)
        theirs = TVCityscapes(str(root), split=split, mode="fine", target_type="semantic")
        assert len(ours) == len(theirs) == 2 * len(D.CITYSCAPES_CITIES[split])
        # torchvision lists cities in os.listdir order: match samples by file name.
        by_name = {Path(p).name: i for i, p in enumerate(theirs.images)}
        for i in range(len(ours)):
            _, target = theirs[by_name[ours.images[i].name]]
            assert np.array_equal(ours[i]["mask"].numpy(), lut[np.array(target)])
    assert Cityscapes(root, "val").cities == ["frankfurt"]


def test_cityscapes_mask_of_the_wrong_size(roots: dict, tmp_path: Path) -> None:
    root = tmp_path / "cs"
    shutil.copytree(roots["cityscapes"][0], root)
    ds = Cityscapes(root, "val")
    path = ds.sample_paths(1)["mask"]
    Image.open(path).resize((16, 8), Image.Resampling.NEAREST).save(path)
    with pytest.raises(BadSampleError, match=r"16x8.*64x32") as info:
        ds[1]
    assert str(path) in str(info.value)


# --- LiTS ---------------------------------------------------------------------------------
def test_lits_pairs_by_number_rounds_labels_and_windows_hu(roots: dict) -> None:
    import nibabel as nib

    root, labels = roots["lits"]
    ds = LiTS(root, "all", cache_dir=roots["cache"])
    assert sorted(ds.volumes) == [0, 2, 10, 28, 29]
    for n, (vol, seg) in ds.volumes.items():
        assert vol.name == f"volume-{n}.nii" and seg.name == f"segmentation-{n}.nii"
    assert len(ds) == 5 * 5
    i = ds.slices.index((10, 2))
    sample = ds[i]
    assert sample["group"] == 10 and sample["image"].shape == (3, 32, 32)
    assert np.array_equal(sample["mask"].numpy(), labels[10][:, :, 2])
    assert set(sample["mask"].unique().tolist()) == {0, 1, 2}
    hu = np.asarray(nib.load(str(ds.volumes[10][0])).dataobj, dtype=np.float32)
    for channel, z in enumerate((1, 2, 3)):  # the slice and its neighbours
        expected = window(hu[:, :, z], -200, 250)
        assert np.allclose(sample["image"][channel].numpy(), expected, atol=1e-3)
    first = ds[ds.slices.index((10, 0))]["image"]
    assert torch.equal(first[0], first[1])  # the edge repeats the end slice
    assert float(sample["image"].min()) >= 0.0 and float(sample["image"].max()) <= 1.0


def test_lits_split_is_by_volume_seeded_and_liver_only_for_training(roots: dict) -> None:
    root, _ = roots["lits"]
    train = LiTS(root, "train", cache_dir=roots["cache"], liver_only_train=True)
    val = LiTS(root, "val", cache_dir=roots["cache"], liver_only_train=True)
    assert not set(train.volumes) & set(val.volumes)
    assert set(train.volumes) | set(val.volumes) == {0, 2, 10, 28, 29} and len(val.volumes) == 1
    assert all(z != 0 for _, z in train.slices)  # slice 0 has no liver
    assert len(val) == 5  # val keeps every slice
    again = LiTS(root, "val", cache_dir=roots["cache"], seed=0)
    other = [set(LiTS(root, "val", cache_dir=roots["cache"], seed=s).volumes) for s in range(6)]
    assert set(again.volumes) == set(val.volumes) and len({frozenset(v) for v in other}) > 1


def test_lits_context_must_match_in_channels(roots: dict) -> None:
    from seglab.errors import ConfigError

    with pytest.raises(ConfigError, match=r"data.in_channels=3 but data.context=2 gives 5"):
        LiTS(roots["lits"][0], "val", cache_dir=roots["cache"], context=2, in_channels=3)
    assert (
        LiTS(roots["lits"][0], "val", cache_dir=roots["cache"], context=2)[0]["image"].shape[0] == 5
    )


def test_lits_cache_is_reused_and_rebuilt_when_the_source_changes(
    roots: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = tmp_path / "lits"
    shutil.copytree(roots["lits"][0], root)
    LiTS(root, "val", cache_dir=tmp_path / "c")
    assert "caching volume-10.nii" in capsys.readouterr().err
    LiTS(root, "val", cache_dir=tmp_path / "c")
    assert "caching" not in capsys.readouterr().err  # valid manifest: reused
    seg = next(root.rglob("segmentation-10.nii"))
    os.utime(seg, ns=(seg.stat().st_atime_ns, seg.stat().st_mtime_ns + 10**9))
    LiTS(root, "val", cache_dir=tmp_path / "c")
    assert "caching volume-10.nii" in capsys.readouterr().err  # stale: rebuilt


def test_lits_shape_mismatch_names_the_file_or_is_skipped(roots: dict, tmp_path: Path) -> None:
    import nibabel as nib

    root = tmp_path / "lits"
    shutil.copytree(roots["lits"][0], root)
    seg = next(root.rglob("segmentation-28.nii"))
    nib.save(nib.Nifti1Image(np.zeros((32, 30, 5), np.float32), np.eye(4)), seg)
    with pytest.raises(BadSampleError, match="segmentation-28.nii.*differs") as info:
        LiTS(root, "all", cache_dir=tmp_path / "c")
    assert str(seg) in str(info.value)
    with pytest.warns(BadSampleWarning, match="segmentation-28.nii"):
        ds = LiTS(root, "all", cache_dir=tmp_path / "c", skip_bad=True)
    assert 28 not in ds.volumes and len(ds.volumes) == 4


# --- Inria --------------------------------------------------------------------------------
def test_inria_gt_255_is_building_and_val_grid_covers_whole_tiles(roots: dict) -> None:
    import tifffile

    root, gts = roots["inria"]
    val = InriaAerial(root, "val", crop_size=32, cache_dir=roots["cache"])
    assert [t[0].stem for t in val.tiles] == ["austin1", "vienna2"]
    covered = {stem: np.zeros_like(gt, dtype=int) for stem, gt in gts.items()}
    for i in range(len(val)):
        sample = val[i]
        stem, rest = val.sample_id(i).split("_y")
        y, x = (int(v) for v in rest.split("_x"))
        covered[stem][y : y + 32, x : x + 32] += 1
        expected = (gts[stem][y : y + 32, x : x + 32] == 255).astype(np.int64)
        assert np.array_equal(sample["mask"].numpy(), expected)  # building stays 1, not ignored
        image = tifffile.imread(val.sample_paths(i)["image"])[y : y + 32, x : x + 32]
        assert torch.equal(
            (sample["image"] * 255).round().byte(), torch.from_numpy(image).permute(2, 0, 1)
        )
        assert sample["group"] == ["austin", "chicago", "kitsap", "tyrol-w", "vienna"].index(
            stem[:-1]
        )
    assert (covered["austin1"] >= 1).all() and (covered["vienna2"] >= 1).all()
    assert window_starts(80, 32, 32) == [0, 32, 48]
    assert window_starts(32, 32, 32) == [0] and window_starts(20, 32, 32) == [0]


def test_inria_truncated_tile(roots: dict, tmp_path: Path) -> None:
    root = tmp_path / "inria"
    shutil.copytree(roots["inria"][0], root)
    gt = root / "AerialImageDataset" / "train" / "gt" / "vienna2.tif"
    gt.write_bytes(gt.read_bytes()[:2000])
    image = root / "AerialImageDataset" / "train" / "images" / "austin1.tif"
    image.write_bytes(image.read_bytes()[:3000])
    with pytest.raises(BadSampleError, match="austin1.tif: cannot read GeoTIFF"):
        InriaAerial(root, "val", crop_size=32, cache_dir=tmp_path / "c")
    with pytest.warns(BadSampleWarning, match="austin1.tif"):
        val = InriaAerial(root, "val", crop_size=32, cache_dir=tmp_path / "c", skip_bad=True)
    assert {val.sample_id(i).split("_")[0] for i in range(len(val))} == {"vienna2"}
    # Every remaining crop reads the truncated vienna2 gt: warned about, then a clear stop.
    with (
        pytest.warns(BadSampleWarning, match="vienna2.tif: cannot read GeoTIFF"),
        pytest.raises(BadSampleError, match="Inria Aerial val: no sample could be read"),
    ):
        val[0]


def test_inria_gt_value_neither_0_nor_255_names_the_tile(roots: dict, tmp_path: Path) -> None:
    import tifffile

    root = tmp_path / "inria"
    shutil.copytree(roots["inria"][0], root)
    gt_path = root / "AerialImageDataset" / "train" / "gt" / "austin1.tif"
    gt = tifffile.imread(gt_path)
    gt[5, 7] = 128
    tifffile.imwrite(gt_path, gt, photometric="minisblack")
    val = InriaAerial(root, "val", crop_size=32, cache_dir=tmp_path / "c")
    with pytest.raises(BadSampleError, match=r"austin1.tif: raw label values \[128\] are not"):
        val[0]


@pytest.mark.parametrize("table", [{0: 0, 255: 1}, {0: 0, 7: 255, 9: 3}])
def test_label_lookup_and_value_check_agree_with_numpy(table: dict[int, int]) -> None:
    """The uint8 fast paths (one cv2 lookup and a max, or a lookup of the unknown values first
    when the table maps to 255 itself) give numpy's `lut[raw]` and name exactly the unknown raw
    values."""
    from seglab.data.base import apply_lut, label_lut, label_values

    lut = label_lut(table)
    raw = np.random.default_rng(0).choice(np.array(list(table), np.uint8), (37, 53))
    for view in (raw, raw[:, ::-2], raw[..., None], raw[:0]):
        mapped = apply_lut(lut, view, Path("m.png"), "D")
        assert mapped.dtype == np.uint8 and np.array_equal(mapped, lut[view])
        assert np.array_equal(label_values(view), np.unique(view))
    raw[3, 4], raw[0, 0] = 200, 201
    with pytest.raises(BadSampleError, match=r"m.png: raw label values \[200, 201\] are not D"):
        apply_lut(lut, raw, Path("m.png"), "D")


@pytest.mark.parametrize("ignore_index", [255, 0])
def test_the_mask_check_passes_classes_and_ignore_and_names_the_rest(ignore_index: int) -> None:
    """`load`'s uint8 check (a table lookup, not a histogram) against `np.unique`."""
    from seglab.data.base import SegmentationReader

    class OneMask(SegmentationReader):
        def __init__(self, mask: np.ndarray) -> None:
            super().__init__("train", None, num_classes=4, ignore_index=ignore_index)
            self.mask = mask

        def __len__(self) -> int:
            return 1

        def sample_id(self, index: int) -> str:
            return "m"

        def sample_paths(self, index: int) -> dict[str, Path]:
            return {"mask": Path("m.png")}

        def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
            return np.zeros((*self.mask.shape, 3), np.uint8), self.mask

    rng = np.random.default_rng(0)
    mask = rng.choice(np.array([0, 1, 2, 3, ignore_index], np.uint8), (37, 53))
    assert OneMask(mask).load(0)[1] is mask
    for view in (mask[:, ::-2], mask.T):  # strided views
        assert OneMask(view).load(0)[1] is view
    mask[5, 6], mask[7, 8] = 9, 254
    with pytest.raises(BadSampleError, match=r"m.png: label values \[9, 254\] outside 0..3"):
        OneMask(mask).load(0)


def test_inria_whole_tile_validation(roots: dict) -> None:
    root, gts = roots["inria"]
    val = InriaAerial(root, "val", crop_size=32, val_crop_size=5000, cache_dir=roots["cache"])
    assert len(val) == 2 and val.sample_id(0) == "austin1_y0_x0"
    assert np.array_equal(val[0]["mask"].numpy(), (gts["austin1"] == 255).astype(np.int64))


def test_inria_train_tiles_and_random_crops(roots: dict) -> None:
    root, _ = roots["inria"]
    train = InriaAerial(root, "train", crop_size=32, crops_per_tile=4, cache_dir=roots["cache"])
    assert sorted(t[0].stem for t in train.tiles) == ["austin6", "austin7", "vienna12"]
    assert len(train) == 12
    crops = {tuple(train[0]["image"].flatten()[:8].tolist()) for _ in range(4)}
    assert len(crops) > 1  # a fresh random crop each time
    assert train[0]["mask"].shape == (32, 32)


def test_inria_compressed_tiles_are_cached(
    roots: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import tifffile

    root = tmp_path / "inria"
    shutil.copytree(roots["inria"][0], root)
    for path in (root / "AerialImageDataset" / "train").rglob("austin1.tif"):
        tifffile.imwrite(path, tifffile.imread(path), compression="zlib")
    plain = InriaAerial(roots["inria"][0], "val", crop_size=32, cache_dir=tmp_path / "c1")
    packed = InriaAerial(root, "val", crop_size=32, cache_dir=tmp_path / "c2")
    assert "decoding austin1.tif" in capsys.readouterr().err
    for i in range(len(plain)):
        assert torch.equal(plain[i]["mask"], packed[i]["mask"])
        assert torch.equal(plain[i]["image"], packed[i]["image"])


# --- CCP ----------------------------------------------------------------------------------
def test_ccp_fixture_reads_mat_and_label_list(roots: dict) -> None:
    root, written = roots["ccp"]
    names = read_label_names(root)
    assert len(names) == 59 and names[0] == "null"
    train, val = CCP(root, "train", val_size=3), CCP(root, "val", val_size=3)
    assert len(train) == 7 and len(val) == 3 and not set(train.ids) & set(val.ids)
    assert set(train.ids) | set(val.ids) == set(written)  # photos without annotations left out
    for ds in (train, val):
        sample = ds[0]
        assert np.array_equal(sample["mask"].numpy(), written[ds.ids[0]])
        assert sample["image"].shape == (3, 64, 40)
    assert ccp_split(list(written), "val", 3, seed=0) == val.ids


def test_ccp_label_out_of_range_and_truncated_photo(roots: dict, tmp_path: Path) -> None:
    root = tmp_path / "ccp"
    shutil.copytree(roots["ccp"][0], root)
    ds = CCP(root, "train", val_size=3)
    mat = ds.sample_paths(1)["mask"]
    savemat(mat, {"groundtruth": np.full((64, 40), 59, np.uint8)})
    with pytest.raises(BadSampleError, match=r"\[59\] outside 0..58") as info:
        ds[1]
    assert str(mat) in str(info.value)
    photo = ds.sample_paths(2)["image"]
    photo.write_bytes(photo.read_bytes()[:300])
    with pytest.raises(BadSampleError, match="cannot read image") as info:
        ds[2]
    assert str(photo) in str(info.value)


def test_skip_bad_warns_replaces_and_is_counted(roots: dict, tmp_path: Path) -> None:
    from seglab.data.datamodule import SegmentationDataModule

    root = tmp_path / "ccp"
    shutil.copytree(roots["ccp"][0], root)
    ds = CCP(root, "train", val_size=3, skip_bad=True)
    photo = ds.sample_paths(2)["image"]
    photo.write_bytes(photo.read_bytes()[:300])
    with pytest.warns(BadSampleWarning, match=str(photo.name)):
        item = ds[2]
    assert item["id"] == ds.ids[3] and item["skipped"] == str(photo)
    assert ds[1]["skipped"] == ""

    def factory(split: str, transform: object) -> CCP:
        return CCP(root, split, val_size=3, skip_bad=True)

    dm = SegmentationDataModule(factory, "ccp", 59, [str(i) for i in range(59)], [[0, 0, 0]] * 59,
                                batch_size=7, num_workers=0)  # fmt: skip
    dm.setup("fit")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BadSampleWarning)
        batch = next(iter(dm.train_dataloader()))
    batch = dm.on_after_batch_transfer(batch, 0)
    assert "skipped" not in batch and dm.skipped == {str(photo)}
    with pytest.warns(BadSampleWarning, match=r"skipped 1 bad file"):
        dm.teardown("fit")


# --- missing roots ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cls", "kwargs", "layout", "source"),
    [
        (COCOStuff, {}, "annotations/{train2017,val2017}", "github.com/nightrome/cocostuff"),
        (Cityscapes, {}, "leftImg8bit/{train,val,test}", "cityscapes-dataset.com"),
        (LiTS, {}, "Training Batch 1/volume-0.nii", "codalab"),
        (InriaAerial, {}, "train/gt/<city><n>.tif", "project.inria.fr/aerialimagelabeling"),
        (CCP, {}, "annotations/pixel-level/0001.mat", "github.com/bearpaw/clothing-co-parsing"),
        (VOCSegmentation, {}, "SegmentationClass/<id>.png", "host.robots.ox.ac.uk"),
    ],
)
def test_missing_root_names_path_layout_and_source(
    cls: type, kwargs: dict, layout: str, source: str, tmp_path: Path
) -> None:
    for root in (tmp_path / "nowhere", tmp_path):  # absent, and present but empty
        with pytest.raises(DatasetNotFoundError) as info:
            cls(root, **kwargs)
        message = str(info.value)
        assert str(root) in message and layout in message and source in message, message


# --- configs ------------------------------------------------------------------------------
def _cityscapes_train_names() -> list[str]:
    """torchvision's Cityscapes class names, in trainId order."""
    from torchvision.datasets import Cityscapes as TVCityscapes

    train = sorted((c.train_id, c.name) for c in TVCityscapes.classes if 0 <= c.train_id < 255)
    assert [t for t, _ in train] == list(range(19))
    return [n for _, n in train]


@pytest.mark.parametrize("name", ["voc", "coco_stuff", "cityscapes", "lits", "inria", "ccp"])
def test_data_configs_are_consistent(name: str) -> None:
    from omegaconf import OmegaConf

    from tests.conftest import compose_train

    data = OmegaConf.to_container(compose_train([f"data={name}"]).data, resolve=True)
    assert data["name"] == name and data["root"].endswith(f"data/{name}")
    assert len(data["class_names"]) == data["num_classes"] == len(data["palette"])
    assert len(set(data["class_names"])) == data["num_classes"]
    assert data["ignore_index"] == 255 and len(data["mean"]) == len(data["std"])
    expected = {
        "voc": list(OmegaConf.load(CONF_DIR / "data" / "voc.yaml").class_names),
        "coco_stuff": list(COCO_CLASSES),
        "cityscapes": _cityscapes_train_names(),
        "lits": ["background", "liver", "tumour"],
        "inria": ["background", "building"],
        "ccp": None,
    }[name]
    if expected is not None:
        assert data["class_names"] == expected
    if name == "ccp":
        real = Path(__file__).resolve().parents[2] / "shared" / "data" / "ccp"
        if (real / "label_list.mat").is_file():  # the config's names are label_list.mat's
            assert data["class_names"] == read_label_names(real)
