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
import torch
from PIL import Image
from torch.utils.data import Dataset

from seglab.errors import BadSampleError, DatasetNotFoundError

VOC_CLASSES: tuple[str, ...] = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)

VOC_URL = "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/"
VOC_TAR = "VOCtrainval_11-May-2012.tar"

_LAYOUT = """\
  <root>/
    VOCdevkit/
      VOC2012/
        ImageSets/Segmentation/{train,val,trainval}.txt
        JPEGImages/<id>.jpg
        SegmentationClass/<id>.png   (palette PNG: pixel index = class id, 255 = void)"""


def voc_palette(n: int = 256) -> list[tuple[int, int, int]]:
    """The VOC colormap: class id bits spread over the high bits of R, G and B.

    This is the rule the devkit's `labelcolormap.m` uses, so masks written with it look
    exactly like the official ones in any image viewer.
    """
    colours = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        colours.append((r, g, b))
    return colours


def _not_found(what: str, path: Path) -> DatasetNotFoundError:
    return DatasetNotFoundError(
        f"PASCAL VOC: {what}: {path}\n"
        f"Expected layout:\n{_LAYOUT}\n"
        f"Get the data from {VOC_URL} ({VOC_TAR}, 2 GB) and unpack it into <root>; "
        "`data.root` may point at <root>, at VOCdevkit or at VOC2012."
    )


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
    try:
        with Image.open(path) as im:
            if im.mode not in ("P", "L"):
                raise BadSampleError(
                    f"{path}: mask has mode {im.mode!r}; expected a palette ('P') or "
                    "grayscale ('L') PNG whose pixel values are class ids"
                )
            return np.array(im)
    except (OSError, SyntaxError, ValueError) as e:
        raise BadSampleError(f"{path}: cannot read mask ({e})") from e


def read_rgb(path: Path) -> np.ndarray:
    """An image as uint8 [H,W,3]; a truncated or corrupt file raises BadSampleError."""
    try:
        with Image.open(path) as im:
            return np.array(im.convert("RGB"))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise BadSampleError(f"{path}: cannot read image ({e})") from e


class VOCSegmentation(Dataset):
    """VOC-layout semantic segmentation: `{"image": float[3,H,W], "mask": long[H,W], "id": str}`.

    `transform` is an albumentations-style callable `transform(image=, mask=) -> dict`.
    Samples are validated as they are read (size, label range) so a bad file names itself
    instead of surfacing later as a CUDA assert or a silently wrong metric.
    """

    class_names: tuple[str, ...] = VOC_CLASSES
    palette: list[tuple[int, int, int]] = voc_palette(len(VOC_CLASSES))

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transform: Callable[..., dict[str, Any]] | None = None,
        num_classes: int = 21,
        ignore_index: int = 255,
    ) -> None:
        self.base = find_voc2012(root)
        self.split = split
        self.transform = transform
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        for sub in ("ImageSets/Segmentation", "JPEGImages", "SegmentationClass"):
            if not (self.base / sub).is_dir():
                raise _not_found(f"missing folder {sub}", self.base / sub)
        split_file = self.base / "ImageSets" / "Segmentation" / f"{split}.txt"
        if not split_file.is_file():
            found = sorted(p.stem for p in split_file.parent.glob("*.txt"))
            raise DatasetNotFoundError(
                f"PASCAL VOC: no split file {split_file} (found splits: {found or 'none'})"
            )
        self.ids = [s.strip() for s in split_file.read_text().splitlines() if s.strip()]
        self._check_files(split_file)
        self._valid = np.zeros(256, dtype=bool)
        self._valid[: min(num_classes, 256)] = True
        if 0 <= ignore_index < 256:
            self._valid[ignore_index] = True

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
        return self.base / "JPEGImages" / f"{sample_id}.jpg"

    def mask_path(self, sample_id: str) -> Path:
        return self.base / "SegmentationClass" / f"{sample_id}.png"

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The raw, validated pair: uint8 image [H,W,3] and uint8 mask [H,W]."""
        sample_id = self.ids[index]
        image = read_rgb(self.image_path(sample_id))
        mask_path = self.mask_path(sample_id)
        mask = read_voc_mask(mask_path)
        if mask.shape != image.shape[:2]:
            raise BadSampleError(
                f"{mask_path}: mask size {mask.shape[1]}x{mask.shape[0]} differs from the "
                f"image size {image.shape[1]}x{image.shape[0]}"
            )
        present = np.bincount(mask.ravel(), minlength=256) > 0
        bad = np.flatnonzero(present & ~self._valid)
        if bad.size:
            raise BadSampleError(
                f"{mask_path}: label values {bad.tolist()} outside 0..{self.num_classes - 1} "
                f"and the ignore index {self.ignore_index}"
            )
        return image, mask

    def __getitem__(self, index: int) -> dict[str, Any]:
        image, mask = self.load(index)
        if self.transform is None:
            img_t = torch.from_numpy(image).permute(2, 0, 1).float().div_(255.0)
            mask_t = torch.from_numpy(mask).long()
        else:
            out = self.transform(image=image, mask=mask)
            img_t, mask_t = _as_chw(out["image"]), torch.as_tensor(out["mask"])
        return {"image": img_t, "mask": mask_t.long(), "id": self.ids[index]}


def _as_chw(image: Any) -> torch.Tensor:
    """Tensors pass through (ToTensorV2 already made them CHW); arrays are HWC and are moved."""
    if isinstance(image, torch.Tensor):
        return image.float()
    return torch.from_numpy(np.ascontiguousarray(np.asarray(image).transpose(2, 0, 1))).float()
