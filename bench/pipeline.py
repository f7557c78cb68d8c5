"""Training pipelines at real resolution against the bare decode of the same files.

Cityscapes-sized data (2048×1024 PNG photos + labelIds) through seglab's Cityscapes reader and
the `scale_crop` pipeline (random scale 0.5-2, pad, 512×1024 crop, flip, colour jitter), and
Inria-sized data (5000×5000 uncompressed GeoTIFF tiles + gt) through seglab's Inria reader
(512 crops from memory-mapped tiles, flips, rot90, jitter). Both are generated on first use
into the bench's work dir (`bench/.work/`, git-ignored) and reused.

Images/s per worker: one process reading samples one after another (a DataLoader worker does
exactly this), so `GPU images/s ÷ this` is the number of workers a GPU needs. The training
pipeline leaves 8-bit images unnormalised (data.normalize_on_device): the device does that.
The bare decode reads the same files with the fastest of cv2 and PIL (photos), or decodes
whole tiles with tifffile and counts each as the `crops_per_tile` crops training takes from it
(Inria), nothing else; `pipeline_decode_ratio_* = bare ÷ pipeline`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.config import ROOT, compose_train

WORK = ROOT / "bench" / ".work"
CITIES = ("aachen",)
CITYSCAPES_FILES = 3
INRIA_TILES = ("austin6", "chicago7")


def _photo(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Smooth shapes plus sensor-like noise: compresses like a photo, not like white noise."""
    import cv2

    low = rng.integers(0, 256, (height // 64, width // 64, 3), dtype=np.uint8)
    image = cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC)
    noise = rng.normal(0, 6, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def _regions(rng: np.random.Generator, height: int, width: int, values: np.ndarray) -> np.ndarray:
    import cv2

    low = rng.choice(values, (height // 32, width // 32)).astype(np.uint8)
    return cv2.resize(low, (width, height), interpolation=cv2.INTER_NEAREST)


def make_cityscapes(root: Path, height: int = 1024, width: int = 2048) -> Path:
    """leftImg8bit/train/<city>/*.png + gtFine labelIds, width×height, made once."""
    import cv2

    done = root / f"done-{height}x{width}"
    if done.is_file():
        return root
    rng = np.random.default_rng(0)
    for city in CITIES:
        for i in range(CITYSCAPES_FILES):
            stem = f"{city}_{i:06d}_000019"
            image_dir = root / "leftImg8bit" / "train" / city
            gt_dir = root / "gtFine" / "train" / city
            image_dir.mkdir(parents=True, exist_ok=True)
            gt_dir.mkdir(parents=True, exist_ok=True)
            photo = _photo(rng, height, width)
            cv2.imwrite(str(image_dir / f"{stem}_leftImg8bit.png"), photo[..., ::-1])
            labels = _regions(rng, height, width, np.arange(34))
            cv2.imwrite(str(gt_dir / f"{stem}_gtFine_labelIds.png"), labels)
    done.write_text("ok\n")
    return root


def make_inria(root: Path, side: int = 5000) -> Path:
    """AerialImageDataset/train/{images,gt}/<city><n>.tif, side×side, uncompressed, made once."""
    import tifffile

    done = root / "done"
    if done.is_file():
        return root
    rng = np.random.default_rng(1)
    base = root / "AerialImageDataset" / "train"
    for stem in INRIA_TILES:
        (base / "images").mkdir(parents=True, exist_ok=True)
        (base / "gt").mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(
            base / "images" / f"{stem}.tif", _photo(rng, side, side), photometric="rgb"
        )
        gt = _regions(rng, side, side, np.array([0, 255]))
        tifffile.imwrite(base / "gt" / f"{stem}.tif", gt, photometric="minisblack")
    done.write_text("ok\n")
    return root


def per_second(read: Callable[[int], Any], count: int, warmup: int = 2) -> float:
    """Samples/s of `read(i)` for i in 0..count-1, after `warmup` untimed reads."""
    for i in range(warmup):
        read(i)
    start = time.perf_counter()
    for i in range(count):
        read(i)
    return count / (time.perf_counter() - start)


def _decoders(paths: list[tuple[Path, Path]], samples: int) -> dict[str, Callable[[], float]]:
    """Samples/s of each bare decoder over the files of `paths`."""
    import cv2
    from PIL import Image

    def with_cv2(i: int) -> Any:
        image, mask = paths[i % len(paths)]
        return cv2.imread(str(image), cv2.IMREAD_COLOR), cv2.imread(str(mask), cv2.IMREAD_UNCHANGED)

    def with_pil(i: int) -> Any:
        image, mask = paths[i % len(paths)]
        with Image.open(image) as a, Image.open(mask) as b:
            return np.asarray(a), np.asarray(b)

    return {
        "cv2": lambda: per_second(with_cv2, samples),
        "PIL": lambda: per_second(with_pil, samples),
    }


def cityscapes(
    samples: int, repeats: int, work: Path = WORK, size: tuple[int, int] = (1024, 2048)
) -> dict[str, Any]:
    """Images/s per worker of the Cityscapes pipeline (crops of half the image's height and
    width: 512×1024 at full size) and of the bare decode (the faster decoder)."""
    height, width = size
    root = make_cityscapes(work / f"cityscapes-{height}x{width}", height, width)
    overrides = [
        "data=cityscapes", f"data.root={root}", f"data.crop_size={height // 2}",
        f"data.train_transforms.crop.width={width // 2}",
        f"data.train_transforms.pad.min_width={width // 2}",
    ]  # fmt: skip
    dataset = _train_dataset(overrides)
    paths = [(p["image"], p["mask"]) for p in map(dataset.sample_paths, range(len(dataset)))]
    return _compare(dataset, _decoders(paths, samples), samples, repeats)


def inria(
    samples: int, repeats: int, work: Path = WORK, side: int = 5000, crop: int = 512
) -> dict[str, Any]:
    """Images/s per worker of the Inria pipeline (`crop` crops) and of decoding the tiles."""
    import tifffile

    root = make_inria(work / f"inria-{side}", side)
    overrides = [
        "data=inria", f"data.root={root}", f"data.cache_dir={work / 'cache'}",
        f"data.crop_size={crop}",
    ]  # fmt: skip
    dataset = _train_dataset(overrides)
    base = root / "AerialImageDataset" / "train"
    crops_per_tile = int(dataset.crops_per_tile)

    def with_tifffile(i: int) -> Any:
        """Decode a whole tile and its gt, counted as the `crops_per_tile` crops taken from it."""
        stem = INRIA_TILES[i % len(INRIA_TILES)]
        return tifffile.imread(base / "images" / f"{stem}.tif"), tifffile.imread(
            base / "gt" / f"{stem}.tif"
        )

    # Both sides time the same crops' worth, at least 16 tiles: with 2 tiles (a 40 ms window) the
    # decode rate alone varied 690-1000 crops/s between two runs in a row.
    tiles = max(16, samples // crops_per_tile)
    decode = {"tifffile": lambda: crops_per_tile * per_second(with_tifffile, tiles, warmup=1)}
    return _compare(dataset, decode, tiles * crops_per_tile, repeats)


def _train_dataset(overrides: list[str]) -> Any:
    from hydra.utils import instantiate

    cfg = compose_train(overrides)
    datamodule = instantiate(cfg.data)
    return datamodule.make_dataset("train")


def _compare(
    dataset: Any, decoders: dict[str, Callable[[], float]], samples: int, repeats: int
) -> dict[str, Any]:
    """Pipeline vs each bare decoder (samples/s), interleaved repeats, medians; one torch
    thread, as in a DataLoader worker (PyTorch sets it there)."""
    import torch

    pipeline, bare = [], {name: [] for name in decoders}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(repeats):  # interleaved, medians
            pipeline.append(per_second(lambda i: dataset[i % len(dataset)], samples))
            for name, rate in decoders.items():
                bare[name].append(rate())
    finally:
        torch.set_num_threads(threads)
    bare_median = {name: statistics.median(v) for name, v in bare.items()}
    fastest = max(bare_median, key=bare_median.__getitem__)
    pipeline_ips = statistics.median(pipeline)
    return {
        "ratio": bare_median[fastest] / pipeline_ips,
        "pipeline_images_per_s": pipeline_ips,
        "decode_images_per_s": bare_median,
        "fastest_decoder": fastest,
    }
