"""Tiny copies of the six datasets, written in their publishers' exact on-disk formats.

Each writer returns the root a user would pass as `data.root` plus the label arrays it wrote,
so tests can compare what the readers return with what is on disk. Sizes are tiny (≤ 96 px)
to keep the suite fast; formats are not: palette PNGs, 8/16-bit PNGs, NIfTI with float labels,
GeoTIFF tiles, MATLAB v5 .mat files, split lists.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import savemat

from seglab.data.voc import voc_palette

RNG_SEED = 1234


def _jpeg(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, quality=95)


def _png(path: Path, array: np.ndarray, mode: str | None = None, palette: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array)
    if mode is not None and image.mode != mode:
        image = image.convert(mode)
    if palette:  # index = class id; putpalette turns the "L" image into "P" keeping the indices
        image.putpalette([v for c in voc_palette() for v in c])
    image.save(path)


def _image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _blobs(rng: np.random.Generator, h: int, w: int, values: list[int]) -> np.ndarray:
    """A label map of rectangles with the given values (value 0 as background)."""
    mask = np.zeros((h, w), dtype=np.uint8)
    for v in values:
        y, x = rng.integers(0, h - 8), rng.integers(0, w - 8)
        mask[y : y + rng.integers(6, h // 2), x : x + rng.integers(6, w // 2)] = v
    return mask


# --- PASCAL VOC 2012 (+ SBD) --------------------------------------------------------------
def _objects(mask: np.ndarray) -> np.ndarray:
    """A SegmentationObject map for a class mask: objects numbered 1.. in order of their class
    (one object per class here), 0 background, 255 where the class mask is void."""
    objects = np.zeros_like(mask)
    for k, value in enumerate(v for v in np.unique(mask) if v not in (0, 255)):
        objects[mask == value] = k + 1
    objects[mask == 255] = 255
    return objects


def make_voc(root: Path, n_train: int = 4, n_val: int = 3, sbd: bool = True) -> Path:
    """`root/VOCdevkit/VOC2012/...` (+ `root/benchmark_RELEASE/dataset/...` when sbd)."""
    rng = np.random.default_rng(RNG_SEED)
    base = root / "VOCdevkit" / "VOC2012"
    ids = [f"2007_{i:06d}" for i in range(n_train + n_val)]
    for i, sid in enumerate(ids):
        h, w = 48 + 8 * (i % 2), 64
        mask = _blobs(rng, h, w, [int(rng.integers(1, 21)), 15])
        mask[0, :] = 255  # void band, as on VOC object borders
        _jpeg(base / "JPEGImages" / f"{sid}.jpg", _image(rng, h, w))
        _png(base / "SegmentationClass" / f"{sid}.png", mask, palette=True)
        _png(base / "SegmentationObject" / f"{sid}.png", _objects(mask), palette=True)
    lists = base / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True, exist_ok=True)
    (lists / "train.txt").write_text("\n".join(ids[:n_train]) + "\n")
    (lists / "val.txt").write_text("\n".join(ids[n_train:]) + "\n")
    (lists / "trainval.txt").write_text("\n".join(ids) + "\n")
    if sbd:
        make_sbd(root / "benchmark_RELEASE", ids[0], ids[n_train], rng)
    return root


def make_sbd(root: Path, voc_train_id: str, voc_val_id: str, rng: np.random.Generator) -> Path:
    """SBD: img/*.jpg, cls/*.mat (GTcls struct), train.txt / val.txt.

    Its lists overlap VOC on purpose: one VOC train id (kept once) and one VOC val id (which
    trainaug must exclude).
    """
    data = root / "dataset"
    own = ["2008_000001", "2008_000002", "2008_000003"]
    for sid in [*own, voc_train_id, voc_val_id]:
        mask = _blobs(rng, 40, 56, [int(rng.integers(1, 21))])
        _jpeg(data / "img" / f"{sid}.jpg", _image(rng, 40, 56))
        (data / "cls").mkdir(parents=True, exist_ok=True)
        gtcls = {"Segmentation": mask, "Boundaries": np.zeros((1, 1)), "CategoriesPresent": [1]}
        savemat(data / "cls" / f"{sid}.mat", {"GTcls": gtcls})
    (data / "train.txt").write_text(f"{own[0]}\n{own[1]}\n{voc_train_id}\n")
    (data / "val.txt").write_text(f"{own[2]}\n{voc_val_id}\n")
    return root


# --- COCO-Stuff 164k ----------------------------------------------------------------------
def make_coco_stuff(root: Path, converted: bool = False) -> tuple[Path, dict[str, np.ndarray]]:
    """images/{train2017,val2017}/*.jpg + annotations/<split>/*.png (raw ids, grayscale).

    Raw masks use kept ids from both ends of the range (0 = person, 181 = wood), 255, and one
    dropped id (11) that must come out as 255. Returns the raw masks written per id.
    """
    rng = np.random.default_rng(RNG_SEED + 1)
    written = {}
    for split, n in (("train2017", 3), ("val2017", 2)):
        for i in range(n):
            sid = f"{139 + 1000 * i + (0 if split == 'train2017' else 7):012d}"
            mask = _blobs(rng, 48, 64, [0, 24, 26, 181, 11])
            mask[mask == 0] = 105  # stuff background
            mask[:, :3] = 255
            _jpeg(root / "images" / split / f"{sid}.jpg", _image(rng, 48, 64))
            name = f"{sid}_labelTrainIds.png" if converted else f"{sid}.png"
            out = _coco_map(mask) if converted else mask
            _png(root / "annotations" / split / name, out, mode="L")
            written[sid] = mask
    return root, written


def make_coco_instances(root: Path, split: str = "val2017") -> dict[str, list[dict]]:
    """annotations/instances_<split>.json as COCO ships it: per image a person (category 1)
    and a dog (18) polygon, and a crowd region (which instance targets leave out)."""
    images, annotations = [], []
    for path in sorted((root / "images" / split).glob("*.jpg")):
        image_id = int(path.stem)
        images.append({"id": image_id, "file_name": path.name, "height": 48, "width": 64})
        for k, (category, x, crowd) in enumerate(((1, 4, 0), (18, 30, 0), (1, 50, 1))):
            poly = [x, 10, x + 12, 10, x + 12, 30, x, 30]
            annotations.append(
                {
                    "id": image_id * 10 + k, "image_id": image_id, "category_id": category,
                    "segmentation": [poly], "area": 240.0, "bbox": [x, 10, 12, 20],
                    "iscrowd": crowd,
                }
            )  # fmt: skip
    categories = [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}]
    payload = {"images": images, "annotations": annotations, "categories": categories}
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(payload))
    return {"annotations": annotations}


def _coco_map(raw: np.ndarray) -> np.ndarray:
    from seglab.data.coco_stuff import RAW_TO_TRAIN

    return RAW_TO_TRAIN[raw].astype(np.uint8)


# --- Cityscapes ---------------------------------------------------------------------------
CITYSCAPES_CITIES = {"train": ["aachen", "zurich"], "val": ["frankfurt"]}
_INSTANCE_CLASSES = {24, 25, 26, 27, 28, 31, 32, 33}


def make_cityscapes(root: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """leftImg8bit + gtFine (labelIds, 16-bit instanceIds, color, polygons) per city folder."""
    rng = np.random.default_rng(RNG_SEED + 2)
    written = {}
    for split, cities in CITYSCAPES_CITIES.items():
        for city in cities:
            for frame in range(2):
                stem = f"{city}_{frame:06d}_{19 + frame:06d}"
                h, w = 32, 64  # the 1:2 aspect of 2048x1024
                labels = _blobs(rng, h, w, [7, 8, 11, 26, 24, 33, 1, 4])
                labels[-4:, :] = 1  # ego vehicle → 255
                _png(
                    root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png",
                    _image(rng, h, w),
                )
                gt = root / "gtFine" / split / city
                _png(gt / f"{stem}_gtFine_labelIds.png", labels, mode="L")
                inst = labels.astype(np.uint16)
                is_inst = np.isin(labels, list(_INSTANCE_CLASSES))
                inst[is_inst] = labels[is_inst].astype(np.uint16) * 1000
                _png(gt / f"{stem}_gtFine_instanceIds.png", inst, mode="I;16")
                _png(gt / f"{stem}_gtFine_color.png", _image(rng, h, w))
                poly = {"imgHeight": h, "imgWidth": w, "objects": []}
                (gt / f"{stem}_gtFine_polygons.json").write_text(json.dumps(poly))
                written[stem] = labels
    return root, written


# --- LiTS -------------------------------------------------------------------------------
LITS_VOLUMES = {"Training Batch 1": [0, 2], "Training Batch 2": [10, 28, 29]}


def make_lits(root: Path, size: int = 32, depth: int = 5) -> tuple[Path, dict[int, np.ndarray]]:
    """volume-N.nii (int16 HU) + segmentation-N.nii (float32 labels with rounding noise).

    Numbers 2 and 10 sort differently as names and as ints: pairing must go by the int.
    Slice 0 of each volume has no liver (for the liver-only training option).
    """
    import nibabel as nib

    rng = np.random.default_rng(RNG_SEED + 3)
    labels_by_n = {}
    affine = np.diag([0.7, 0.7, 2.5, 1.0])
    for folder, numbers in LITS_VOLUMES.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for n in numbers:
            hu = rng.integers(-1000, 1000, (size, size, depth)).astype(np.int16)
            labels = np.zeros((size, size, depth), dtype=np.float32)
            labels[8:24, 8:24, 1:] = 1.0
            labels[12:16, 12:16, 2:4] = 2.0
            noisy = labels + rng.uniform(-0.2, 0.2, labels.shape).astype(np.float32)
            nib.save(nib.Nifti1Image(hu, affine), root / folder / f"volume-{n}.nii")
            nib.save(nib.Nifti1Image(noisy, affine), root / folder / f"segmentation-{n}.nii")
            labels_by_n[n] = labels.astype(np.uint8)
    return root, labels_by_n


# --- Inria Aerial -------------------------------------------------------------------------
INRIA_TILES = {"austin": [1, 6, 7], "vienna": [2, 12]}


def _geotiff(path: Path, array: np.ndarray) -> None:
    """An uncompressed GeoTIFF like Inria's: pixel scale 0.3 m, a tie point, geo keys."""
    import tifffile

    path.parent.mkdir(parents=True, exist_ok=True)
    geo = [
        (33550, "d", 3, (0.3, 0.3, 0.0), False),  # ModelPixelScaleTag
        (33922, "d", 6, (0.0, 0.0, 0.0, 600000.0, 3350000.0, 0.0), False),  # ModelTiepointTag
        (34735, "H", 8, (1, 1, 0, 1, 1024, 0, 1, 1), False),  # GeoKeyDirectoryTag
    ]
    photometric = "rgb" if array.ndim == 3 else "minisblack"
    tifffile.imwrite(path, array, photometric=photometric, extratags=geo)


def make_inria(root: Path, h: int = 80, w: int = 96) -> tuple[Path, dict[str, np.ndarray]]:
    """AerialImageDataset/train/{images,gt}/<city><n>.tif; gt 0/255. Returns gt per stem."""
    rng = np.random.default_rng(RNG_SEED + 4)
    base = root / "AerialImageDataset"
    written = {}
    for city, numbers in INRIA_TILES.items():
        for n in numbers:
            gt = _blobs(rng, h, w, [255, 255, 255])
            _geotiff(base / "train" / "images" / f"{city}{n}.tif", _image(rng, h, w))
            _geotiff(base / "train" / "gt" / f"{city}{n}.tif", gt)
            written[f"{city}{n}"] = gt
    _geotiff(base / "test" / "images" / "bellingham1.tif", _image(rng, h, w))
    return root, written


# --- CCP --------------------------------------------------------------------------------
def make_ccp(
    root: Path, n: int = 10, names: list[str] | None = None
) -> tuple[Path, dict[str, np.ndarray]]:
    """photos/NNNN.jpg (more photos than annotations), annotations/pixel-level/NNNN.mat, label_list.mat."""
    rng = np.random.default_rng(RNG_SEED + 5)
    names = names or ["null", *(f"label{i}" for i in range(1, 59))]
    written = {}
    for i in range(1, n + 3):
        sid = f"{i:04d}"
        h, w = 64, 40  # portrait, like the photos
        _jpeg(root / "photos" / f"{sid}.jpg", _image(rng, h, w))
        if i <= n:
            mask = _blobs(rng, h, w, [41, 19, int(rng.integers(1, 59))])
            (root / "annotations" / "pixel-level").mkdir(parents=True, exist_ok=True)
            savemat(root / "annotations" / "pixel-level" / f"{sid}.mat", {"groundtruth": mask})
            written[sid] = mask
    cells = np.empty((1, len(names)), dtype=object)
    for i, name in enumerate(names):
        cells[0, i] = np.array([name])
    savemat(root / "label_list.mat", {"label_list": cells})
    return root, written


# data.root writers by config name, for tests that go over every dataset.
ROOT_MAKERS = {
    "voc": lambda root: make_voc(root),
    "coco_stuff": lambda root: make_coco_stuff(root)[0],
    "cityscapes": lambda root: make_cityscapes(root)[0],
    "inria": lambda root: make_inria(root)[0],
    "ccp": lambda root: make_ccp(root)[0],
    "lits": lambda root: make_lits(root)[0],
}


# --- data=folder: a user's own images/ + masks/ ----------------------------------------------
FOLDER_CLASSES = {"background": [0, 0, 0], "cat": [255, 0, 0], "dog": [0, 0, 255]}


def make_folder(root: Path, n: int = 10, colour: bool = False, size: int = 48) -> Path:
    """`root/images/<name>.jpg|png` + `root/masks/<name>.png` with 3 classes: index masks with a
    classes.txt, or (colour) RGB colour masks with a classes.yaml of name: [r, g, b]. Sizes vary
    (the val pipeline resizes and pads them); a subfolder holds some of the pairs."""
    rng = np.random.default_rng(RNG_SEED)
    colours = np.array(list(FOLDER_CLASSES.values()), dtype=np.uint8)
    for i in range(n):
        name = f"sub/img_{i:02d}" if i % 4 == 3 else f"img_{i:02d}"
        h, w = size, size + 8 * (i % 3)
        mask = _blobs(rng, h, w, [1, 2])
        image = _image(rng, h, w) // 2
        image[mask == 1, 0] = 250  # a learnable cue: cats are red, dogs blue
        image[mask == 2, 2] = 250
        suffix = ".png" if i % 2 else ".jpg"
        (_png if suffix == ".png" else _jpeg)(root / "images" / f"{name}{suffix}", image)
        _png(root / "masks" / f"{name}.png", colours[mask] if colour else mask)
    if colour:
        lines = [f"{name}: [{r}, {g}, {b}]" for name, (r, g, b) in FOLDER_CLASSES.items()]
        (root / "classes.yaml").write_text("\n".join(lines) + "\n")
    else:
        (root / "classes.txt").write_text("\n".join(FOLDER_CLASSES) + "\n")
    return root
