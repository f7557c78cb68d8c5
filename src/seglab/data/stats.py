"""Class-frequency statistics over a dataset's training split, cached per dataset and split.

`python -m seglab.data.stats data=<name> data.root=<dir> [key=value ...]` prints the table;
`loss.class_weights=auto` uses the same (cached) numbers. Masks are read raw (no augmentation)
through the reader's validated `load`, so a bad file stops the count like it stops training.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from seglab.data.cache import announce, cache_dir_for
from seglab.errors import ConfigError, report_user_errors

STATS_VERSION = 1


def class_frequencies(dataset: Any, num_classes: int) -> dict[str, Any]:
    """Per class: pixel count, and the pixels of the images in which it occurs (for median freq)."""
    pixels = np.zeros(num_classes, dtype=np.int64)
    image_pixels = np.zeros(num_classes, dtype=np.int64)
    ignored = 0
    for i in range(len(dataset)):
        _, mask = dataset.load(i)
        counts = np.bincount(mask.ravel(), minlength=256)
        valid = counts[:num_classes]
        pixels += valid
        image_pixels[valid > 0] += int(valid.sum())
        ignored += int(counts.sum() - valid.sum())
    return {
        "images": len(dataset),
        "pixels": pixels.tolist(),
        "image_pixels": image_pixels.tolist(),
        "ignored_pixels": ignored,
    }


def median_frequency_weights(stats: dict[str, Any]) -> list[float]:
    """Eigen & Fergus: w_c = median(f) / f_c, f_c = pixels_c / pixels of images containing c.

    A class absent from the training split gets weight 0 (nothing to learn it from, and an
    infinite weight would be meaningless).
    """
    pixels = np.asarray(stats["pixels"], dtype=np.float64)
    image_pixels = np.asarray(stats["image_pixels"], dtype=np.float64)
    present = image_pixels > 0
    freq = np.zeros_like(pixels)
    freq[present] = pixels[present] / image_pixels[present]
    weights = np.zeros_like(pixels)
    weights[present] = np.median(freq[present]) / freq[present]
    return [round(float(w), 6) for w in weights]


def _train_reader(data_cfg: DictConfig) -> tuple[Any, Any]:
    import hydra.utils

    datamodule = hydra.utils.instantiate(data_cfg)
    datamodule.prepare_data()
    split = datamodule.splits["train"]
    return datamodule, datamodule.dataset_factory(split=split, transform=None)


def dataset_stats(data_cfg: DictConfig) -> dict[str, Any]:
    """The training split's statistics, from `<data.cache_dir>` when its key still matches."""
    datamodule, reader = _train_reader(data_cfg)
    ids = "\n".join(reader.sample_id(i) for i in range(len(reader)))
    key = {
        "version": STATS_VERSION,
        "name": datamodule.name,
        "split": datamodule.splits["train"],
        "num_classes": datamodule.num_classes,
        "ids": hashlib.sha1(ids.encode()).hexdigest(),
    }
    cache_dir = data_cfg.get("cache_dir") or Path(str(data_cfg.root)) / ".seglab_cache"
    path = cache_dir_for(cache_dir, datamodule.name, str(data_cfg.root)) / "class_stats.json"
    try:
        cached = json.loads(path.read_text())
        if cached.get("key") == key:
            return cached
    except (OSError, ValueError):
        pass
    announce(f"{datamodule.name}: counting class frequencies over {len(reader)} training samples")
    stats = {"key": key, **class_frequencies(reader, datamodule.num_classes)}
    stats["class_names"] = datamodule.class_names
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(stats, indent=1))
    announce(f"{datamodule.name}: class statistics cached in {path}")
    return stats


def resolve_auto_class_weights(cfg: DictConfig) -> None:
    """Replace every `class_weights: auto` in the loss config by median-frequency weights."""
    from omegaconf import open_dict

    def visit(node: Any) -> list[Any]:
        found = []
        if isinstance(node, DictConfig):
            for k in node:
                if k == "class_weights" and node.get(k) == "auto":
                    found.append(node)
                else:
                    found += visit(node.get(k))
        elif hasattr(node, "__iter__") and not isinstance(node, str) and node is not None:
            for item in node:
                found += visit(item)
        return found

    holders = visit(cfg.loss)
    if not holders:
        return
    weights = median_frequency_weights(dataset_stats(cfg.data))
    for holder in holders:
        with open_dict(holder):
            holder.class_weights = weights


def format_table(stats: dict[str, Any]) -> str:
    total = max(1, sum(stats["pixels"]))
    weights = median_frequency_weights(stats)
    rows = [f"{'id':>3}  {'class':<20} {'pixels':>12} {'share':>8} {'weight':>8}"]
    for i, (name, n) in enumerate(zip(stats["class_names"], stats["pixels"], strict=True)):
        rows.append(f"{i:>3}  {name:<20} {n:>12} {n / total:>8.4f} {weights[i]:>8.3f}")
    rows.append(f"images: {stats['images']}, ignored pixels: {stats['ignored_pixels']}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    """`python -m seglab.data.stats data=<name> data.root=<dir>`: print the training split's table."""
    import os

    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    conf = Path(__file__).resolve().parents[3] / "conf"
    os.environ.setdefault("SEGLAB_ROOT", str(conf.parent))  # data/ defaults as for train.py
    overrides = list(sys.argv[1:] if argv is None else argv)
    if {"-h", "--help"} & set(overrides):
        print(__doc__)
        return

    @report_user_errors
    def run() -> None:
        try:
            with initialize_config_dir(str(conf), version_base="1.3"):
                cfg = compose("train", overrides=overrides)
        except HydraException as error:  # a misspelt group or key, or an unparsable override
            raise ConfigError(
                f"python -m seglab.data.stats {' '.join(overrides)}: {error}"
            ) from error
        print(format_table(dataset_stats(cfg.data)))

    run()


if __name__ == "__main__":
    main()
