"""PASCAL VOC 2012 segmentation, read exactly as the devkit tarball unpacks.

Masks are palette PNGs whose pixel index is the class id, so they are read with
`np.array(Image.open(p))`; converting them (`.convert("L")`) would map palette colours to
grey levels and destroy the labels.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from seglab.data.base import SegmentationReader, not_found
from seglab.data.instances import InstanceSpec, instances_from_ids
from seglab.data.io import read_image, read_label_png, read_mat
from seglab.errors import BadSampleError, DatasetNotFoundError
from seglab.visualize import voc_palette

# Class names and colours live in the data config (conf/data/voc.yaml: class_names, and palette
# as ${seglab.voc_palette:21}); the reader deals in class ids only.
__all__ = ["VOCSegmentation", "read_voc_mask", "voc_palette"]


VOC_URL = "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/"
VOC_TAR = "VOCtrainval_11-May-2012.tar"

_LAYOUT = """\
  <root>/
    VOCdevkit/
      VOC2012/
        ImageSets/Segmentation/{train,val,trainval}.txt
        JPEGImages/<id>.jpg
        SegmentationClass/<id>.png   (palette PNG: pixel index = class id, 255 = void)
        SegmentationObject/<id>.png  (palette PNG: pixel index = object; model=mask_rcnn)"""


_SOURCE = (
    f"Get the data from {VOC_URL} ({VOC_TAR}, 2 GB) and unpack it into <root>; "
    "`data.root` may point at <root>, at VOCdevkit or at VOC2012."
)


def _not_found(what: str, path: Path) -> DatasetNotFoundError:
    return not_found("PASCAL VOC", what, path, _LAYOUT, _SOURCE)


def find_voc2012(root: str | Path) -> Path:
    """The `VOC2012` folder under `root`, which may be its parent's parent, its parent or itself."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise _not_found("dataset root does not exist", root)
    for candidate in (root / "VOCdevkit" / "VOC2012", root / "VOC2012"):
        if candidate.is_dir():
            return candidate
    if any((root / sub).is_dir() for sub in ("ImageSets", "JPEGImages", "SegmentationClass")):
        return root
    raise _not_found("no VOCdevkit/VOC2012 folder in the dataset root", root)


def read_voc_mask(path: Path) -> np.ndarray:
    """A VOC class/object mask as uint8 ids; refuses colour images, whose pixels are not ids."""
    return read_label_png(path, ("P", "L"))


def read_sbd_mask(path: Path, struct: str = "GTcls") -> np.ndarray:
    """An SBD mask: `loadmat(f)[struct][0]["Segmentation"][0]` as uint8; GTcls (cls/*.mat)
    holds class ids (255 = void), GTinst (inst/*.mat) object ids."""
    gt = read_mat(path, struct)
    try:
        return np.asarray(gt[0]["Segmentation"][0]).astype(np.uint8)
    except (IndexError, KeyError, ValueError) as e:
        raise BadSampleError(f"{path}: {struct} has no Segmentation field ({e})") from e


def _read_ids(path: Path) -> list[str]:
    return [s.strip() for s in path.read_text().splitlines() if s.strip()]


class VOCSegmentation(SegmentationReader):
    """VOC-layout semantic segmentation: `{"image": float[3,H,W], "mask": long[H,W], "id": str}`.

    `transform` is an albumentations-style callable `transform(image=, mask=) -> dict`.
    `split="trainaug"` (with `sbd_root` pointing at SBD's `benchmark_RELEASE`) is the usual
    10582-image set: VOC train ∪ SBD train ∪ SBD val − VOC val; an id's mask comes from VOC's
    SegmentationClass when VOC has one, else from SBD's `cls/<id>.mat`.
    """

    dataset_name = "PASCAL VOC"

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transform: Callable[..., dict[str, Any]] | None = None,
        num_classes: int = 21,
        ignore_index: int = 255,
        skip_bad: bool = False,
        sbd_root: str | Path | None = None,
    ) -> None:
        super().__init__(split, transform, num_classes, ignore_index, skip_bad)
        self.base = find_voc2012(root)
        for sub in ("ImageSets/Segmentation", "JPEGImages", "SegmentationClass"):
            if not (self.base / sub).is_dir():
                raise _not_found(f"missing folder {sub}", self.base / sub)
        self.sbd = find_sbd(sbd_root) if sbd_root else None
        lists = self.base / "ImageSets" / "Segmentation"
        if split == "trainaug" and self.sbd is not None:
            val = set(_read_ids(lists / "val.txt"))
            extra = _read_ids(self.sbd / "train.txt") + _read_ids(self.sbd / "val.txt")
            merged = dict.fromkeys(_read_ids(lists / "train.txt") + extra)
            self.ids = sorted(i for i in merged if i not in val)
            self._check_files(self.sbd / "train.txt")
            return
        split_file = lists / f"{split}.txt"
        if not split_file.is_file():
            found = sorted(p.stem for p in split_file.parent.glob("*.txt"))
            hint = (
                " (trainaug needs data.sbd_root=<.../benchmark_RELEASE>)"
                if split == "trainaug"
                else ""
            )
            raise DatasetNotFoundError(
                f"PASCAL VOC: no split file {split_file} (found splits: {found or 'none'}){hint}"
            )
        self.ids = _read_ids(split_file)
        self._check_files(split_file)

    def _check_files(self, split_file: Path) -> None:
        # A stat per file is cheap next to a crash many minutes into an epoch.
        missing = [
            p for i in self.ids for p in (self.image_path(i), self.mask_path(i)) if not p.is_file()
        ]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise DatasetNotFoundError(
                f"PASCAL VOC: {split_file} lists a sample whose file is missing: {missing[0]}{more}"
            )

    def image_path(self, sample_id: str) -> Path:
        path = self.base / "JPEGImages" / f"{sample_id}.jpg"
        if self.sbd is not None and not path.is_file():
            return self.sbd / "img" / f"{sample_id}.jpg"
        return path

    def mask_path(self, sample_id: str) -> Path:
        path = self.base / "SegmentationClass" / f"{sample_id}.png"
        if path.is_file():
            return path
        if self.sbd is not None:
            return self.sbd / "cls" / f"{sample_id}.mat"
        # The converted trainaug masks (grayscale PNGs) many users already have.
        aug = self.base / "SegmentationClassAug" / f"{sample_id}.png"
        return aug if aug.is_file() else path

    def instance_path(self, sample_id: str) -> Path | None:
        """SegmentationObject/<id>.png, else SBD's inst/<id>.mat, else None (not annotated)."""
        path = self.base / "SegmentationObject" / f"{sample_id}.png"
        if path.is_file():
            return path
        sbd = self.sbd / "inst" / f"{sample_id}.mat" if self.sbd is not None else None
        return sbd if sbd is not None and sbd.is_file() else None

    def read_instances(
        self, index: int, mask: np.ndarray, spec: InstanceSpec
    ) -> tuple[np.ndarray, np.ndarray]:
        """Objects of SegmentationObject (index = object, 0 background, 255 void), each of the
        class under it in SegmentationClass; connected components where none is annotated."""
        path = self.instance_path(self.ids[index])
        if path is None:
            return super().read_instances(index, mask, spec)
        ids = read_sbd_mask(path, "GTinst") if path.suffix == ".mat" else read_voc_mask(path)
        if ids.shape != mask.shape:
            raise BadSampleError(
                f"{path}: object mask size {ids.shape[1]}x{ids.shape[0]} differs from the "
                f"class mask's {mask.shape[1]}x{mask.shape[0]}"
            )
        return instances_from_ids(ids, mask, spec)

    def __len__(self) -> int:
        return len(self.ids)

    def sample_id(self, index: int) -> str:
        return self.ids[index]

    def sample_paths(self, index: int) -> dict[str, Path]:
        sample_id = self.ids[index]
        paths = {"image": self.image_path(sample_id), "mask": self.mask_path(sample_id)}
        instances = self.instance_path(sample_id)
        return paths if instances is None else {**paths, "instances": instances}

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        paths = self.sample_paths(index)
        image = read_image(paths["image"])
        if paths["mask"].suffix == ".mat":
            return image, read_sbd_mask(paths["mask"])
        return image, read_voc_mask(paths["mask"])


_SBD_LAYOUT = """\
  benchmark_RELEASE/
    dataset/
      img/<id>.jpg
      cls/<id>.mat     (GTcls.Segmentation: class ids, 255 = void)
      train.txt val.txt"""
SBD_URL = "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/benchmark.tgz"


def find_sbd(root: str | Path) -> Path:
    """SBD's `dataset` folder; `root` may be `benchmark_RELEASE`, its parent or `dataset` itself."""
    root = Path(root).expanduser()
    for candidate in (root / "benchmark_RELEASE" / "dataset", root / "dataset", root):
        if (candidate / "cls").is_dir() and (candidate / "train.txt").is_file():
            return candidate
    raise not_found(
        "SBD (VOC trainaug)",
        "no benchmark_RELEASE/dataset with cls/ and train.txt",
        root,
        _SBD_LAYOUT,
        f"Get it from {SBD_URL} and unpack it; point data.sbd_root at it.",
    )
