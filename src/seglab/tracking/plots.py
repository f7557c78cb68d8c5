"""Images logged as MLflow artifacts: confusion matrix and prediction overlay grids."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from seglab.visualize import colorize, draw_instances  # noqa: E402


def save_confusion_matrix(matrix: np.ndarray, class_names: Sequence[str], path: Path) -> Path:
    """Row-normalised confusion matrix (rows: label, columns: prediction) as a PNG.

    An extra last column (pixels an instance model gave no class) is labelled "(none)".
    """
    counts = np.asarray(matrix, dtype=np.float64)
    rows = counts.sum(axis=1, keepdims=True)
    norm = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    n = len(class_names)
    columns = [*class_names, "(none)"][: counts.shape[1]]
    side = min(4 + 0.35 * n, 30)
    fig, ax = plt.subplots(figsize=(side + 1.5, side))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(columns)), columns, rotation=90, fontsize=8)
    ax.set_yticks(range(n), class_names, fontsize=8)
    ax.set_xlabel("prediction")
    ax.set_ylabel("label")
    ax.set_title("Confusion matrix (each label row sums to 1)")
    if n <= 25:
        for i in range(n):
            for j in range(len(columns)):
                if norm[i, j] >= 0.005:
                    colour = "white" if norm[i, j] > 0.5 else "black"
                    ax.text(
                        j,
                        i,
                        f"{norm[i, j]:.2f}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color=colour,
                    )
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def enlarge(image: np.ndarray, min_side: int) -> np.ndarray:
    """Nearest-neighbour upscaling by an integer factor until the short side is >= min_side
    (mask edges stay exact); the first two axes are height and width."""
    scale = max(1, -(-min_side // min(image.shape[:2])))
    return image.repeat(scale, axis=0).repeat(scale, axis=1)


def save_rows(rows: Sequence[Sequence[np.ndarray]], path: Path) -> Path:
    """Tiles (RGB uint8) side by side per row, rows stacked, white gaps; saved as a PNG."""
    lines = []
    for tiles in rows:
        gap = np.full((tiles[0].shape[0], 4, 3), 255, dtype=np.uint8)
        parts = [part for tile in tiles for part in (tile, gap)][:-1]
        lines.append(np.concatenate(parts, axis=1))
    width = max(line.shape[1] for line in lines)
    padded = [
        np.pad(line, ((0, 4), (0, width - line.shape[1]), (0, 0)), constant_values=255)
        for line in lines
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(padded, axis=0)).save(path)
    return path


def save_overlay_grid(
    images: Sequence[np.ndarray],
    truths: Sequence[np.ndarray],
    predictions: Sequence[np.ndarray],
    palette: Sequence[Sequence[int]],
    ignore_index: int | None,
    path: Path,
    min_side: int = 160,
) -> Path:
    """One row per sample: image | truth | prediction, masks in the dataset's palette.

    Small images are enlarged (nearest neighbour, so mask edges stay exact) to be legible.
    """
    rows = [
        [
            enlarge(tile, min_side)
            for tile in (
                image,
                colorize(truth, palette, ignore_index),
                colorize(pred, palette, ignore_index),
            )
        ]
        for image, truth, pred in zip(images, truths, predictions, strict=True)
    ]
    return save_rows(rows, path)


def save_instance_grid(
    images: Sequence[np.ndarray],
    truths: Sequence[tuple[np.ndarray, Sequence[str]]],
    predictions: Sequence[tuple[np.ndarray, Sequence[str]]],
    path: Path,
    min_side: int = 256,
) -> Path:
    """One row per sample: image | true instances | predicted instances, each instance in its
    own colour with its caption (class; class and score). Masks are bool [N,H,W]."""
    rows = []
    for image, (true_masks, true_captions), (pred_masks, pred_captions) in zip(
        images, truths, predictions, strict=True
    ):
        big = enlarge(image, min_side)
        scale = big.shape[0] // image.shape[0]

        def up(masks: np.ndarray, s: int = scale) -> np.ndarray:
            return masks.repeat(s, axis=1).repeat(s, axis=2)

        rows.append(
            [
                big,
                draw_instances(big, up(true_masks), true_captions),
                draw_instances(big, up(pred_masks), pred_captions),
            ]
        )
    return save_rows(rows, path)
