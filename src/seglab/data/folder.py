"""Your own data: `images/` and `masks/` with matching file names (`data=folder`).

The layout a user can make without a converter: any image format `read_image` reads, masks as
single-channel index images (PNG, palette PNG, 16-bit PNG, TIFF) or RGB colour masks mapped
through the palette. Classes come from the config or from `classes.yaml`/`classes.txt` in the
root (read by the config resolvers, seglab.resolvers.folder_classes, so `data.num_classes`
follows from them before the model is built). Splits from `splits/*.txt`
when present, else a seeded split of `val_fraction` (the same on every machine).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from seglab.data.base import BadSampleWarning, SegmentationReader, not_found, seeded_split
from seglab.data.io import IMAGE_SUFFIXES, read_image
from seglab.errors import BadSampleError, ConfigError, DatasetNotFoundError

MASK_SUFFIXES = (".png", ".tif", ".tiff", ".bmp")
LAYOUT = """\
  <root>/
    images/<name>.jpg|png|tif|...      (any depth; <name> may include subfolders)
    masks/<name>.png|tif               (same <name>: index mask, palette PNG or RGB colour mask)
    classes.yaml | classes.txt         (optional with data.class_names: one name per class, in id order;
                                        classes.yaml may map name: [r, g, b] for RGB colour masks)
    splits/train.txt, val.txt[, test.txt]  (optional: one <name> per line; else data.val_fraction)"""
_SOURCE = "Arrange your images and masks as above and point data.root at the folder."


def _index_files(folder: Path, suffixes: tuple[str, ...], what: str) -> dict[str, Path]:
    """{name (relative path without suffix): file}; two files of one name are an error."""
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.suffix.lower() not in suffixes:
            continue
        name = path.relative_to(folder).with_suffix("").as_posix()
        if name in found:
            raise DatasetNotFoundError(
                f"folder: two {what} files named {name!r}: {found[name]} and {path}"
            )
        found[name] = path
    return found


class FolderDataset(SegmentationReader):
    """`images/<name>.*` + `masks/<name>.*` (see the module docstring)."""

    dataset_name = "folder"

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transform: Callable[..., dict[str, Any]] | None = None,
        num_classes: int = 2,
        ignore_index: int = 255,
        skip_bad: bool = False,
        palette: Sequence[Sequence[int]] | None = None,
        ignore_color: Sequence[int] | None = None,
        val_fraction: float = 0.2,
        seed: int = 0,
    ) -> None:
        super().__init__(split, transform, num_classes, ignore_index, skip_bad)
        self.root = Path(root).expanduser()
        image_dir, mask_dir = self.root / "images", self.root / "masks"
        for folder in (self.root, image_dir, mask_dir):
            if not folder.is_dir():
                raise not_found("folder", "missing folder", folder, LAYOUT, _SOURCE)
        images = _index_files(image_dir, IMAGE_SUFFIXES, "image")
        masks = _index_files(mask_dir, MASK_SUFFIXES, "mask")
        if not images:
            raise not_found("folder", "no images", image_dir, LAYOUT, _SOURCE)
        unpaired = [(images[n], "has no mask in", mask_dir) for n in images if n not in masks]
        unpaired += [(masks[n], "has no image in", image_dir) for n in masks if n not in images]
        for path, problem, other in unpaired:
            message = f"{path} {problem} {other} (matched by file name without suffix)"
            if not skip_bad:
                raise BadSampleError(message)
            warnings.warn(f"skipping bad sample: {message}", BadSampleWarning, stacklevel=2)
        names = sorted(set(images) & set(masks))
        self.names = self._split(names, split, val_fraction, seed)
        self.images, self.masks = images, masks
        self.colours = _colour_table(palette, ignore_color, self.ignore_index)

    def _split(self, names: list[str], split: str, val_fraction: float, seed: int) -> list[str]:
        split_file = self.root / "splits" / f"{split}.txt"
        if split_file.is_file():
            listed = [s.strip() for s in split_file.read_text().splitlines() if s.strip()]
            missing = [n for n in listed if n not in names]
            if missing:
                more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
                raise DatasetNotFoundError(
                    f"{split_file} lists {missing[0]!r}, which has no image+mask pair{more}"
                )
            return listed
        if (self.root / "splits").is_dir() and split != "all":
            found = sorted(p.stem for p in (self.root / "splits").glob("*.txt"))
            raise DatasetNotFoundError(
                f"folder: no split file {split_file} (found splits: {found or 'none'})"
            )
        if not 0 <= val_fraction < 1:
            raise ConfigError(f"data.val_fraction={val_fraction}: expected a fraction in [0, 1)")
        num_val = max(1, round(val_fraction * len(names))) if val_fraction > 0 else 0
        if split in ("train", "val") and len(names) - num_val < 1:
            raise DatasetNotFoundError(
                f"folder: {len(names)} image+mask pair(s) in {self.root} is too few to split "
                f"off data.val_fraction={val_fraction}"
            )
        return seeded_split(names, split, num_val, seed, "folder")

    def __len__(self) -> int:
        return len(self.names)

    def sample_id(self, index: int) -> str:
        return self.names[index]

    def sample_paths(self, index: int) -> dict[str, Path]:
        name = self.names[index]
        return {"image": self.images[name], "mask": self.masks[name]}

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        paths = self.sample_paths(index)
        return read_image(paths["image"]), self.read_mask(paths["mask"])

    def read_mask(self, path: Path) -> np.ndarray:
        """Class ids H×W: index masks as stored (palette PNGs by index), RGB through the palette.

        Values are returned as int32 so an index above the class list reaches `load`'s check
        unchanged (16-bit masks included)."""
        try:
            if path.suffix.lower() in (".tif", ".tiff"):
                import tifffile

                array = np.asarray(tifffile.imread(path))
            else:
                with Image.open(path) as image:
                    array = np.array(image.convert("RGB") if image.mode == "RGBA" else image)
        except (OSError, SyntaxError, ValueError) as error:
            raise BadSampleError(f"{path}: cannot read mask ({error})") from error
        if array.ndim == 3 and array.shape[-1] == 1:
            array = array[..., 0]
        if array.ndim == 3 and array.shape[-1] in (3, 4):
            return self.map_colours(array[..., :3], path)
        if array.ndim != 2 or not np.issubdtype(array.dtype, np.integer):
            raise BadSampleError(
                f"{path}: mask of shape {array.shape} and type {array.dtype}; expected a "
                "single-channel integer index image or an RGB colour mask"
            )
        return array.astype(np.int32)

    def map_colours(self, rgb: np.ndarray, path: Path) -> np.ndarray:
        """RGB → class id through the palette; an unknown colour is named with its pixel count."""
        codes = (
            (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
        )
        found, inverse, counts = np.unique(codes, return_inverse=True, return_counts=True)
        ids = np.array([self.colours.get(int(c), -1) for c in found], dtype=np.int32)
        unknown = np.flatnonzero(ids < 0)
        if unknown.size:
            shown = ", ".join(
                f"({c >> 16}, {(c >> 8) & 255}, {c & 255}) × {n} px"
                for c, n in zip(found[unknown].tolist(), counts[unknown].tolist(), strict=True)
            )
            raise BadSampleError(
                f"{path}: RGB colour(s) not in data.palette: {shown} (add them to data.palette "
                "or classes.yaml, or set data.ignore_color)"
            )
        return ids[inverse.reshape(rgb.shape[:2])]


def _colour_table(
    palette: Sequence[Sequence[int]] | None, ignore_color: Sequence[int] | None, ignore_index: int
) -> dict[int, int]:
    """Packed 0xRRGGBB → class id; two classes of one colour cannot be told apart: an error."""
    table: dict[int, int] = {}
    for class_id, colour in enumerate(palette or []):
        r, g, b = (int(v) for v in colour)
        code = (r << 16) | (g << 8) | b
        if code in table:
            raise ConfigError(
                f"data.palette: classes {table[code]} and {class_id} share the colour "
                f"({r}, {g}, {b}), so RGB masks cannot tell them apart"
            )
        table[code] = class_id
    if ignore_color is not None:
        r, g, b = (int(v) for v in ignore_color)
        table[(r << 16) | (g << 8) | b] = ignore_index
    return table
