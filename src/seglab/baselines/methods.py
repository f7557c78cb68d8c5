"""The baselines: each is fitted on the training split's raw (image, mask) pairs and then
predicts a class map per image, with nothing learned beyond what its docstring says.

Images arrive as the dataset readers return them: H×W×C, uint8 or float32 in [0, 1].
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import cv2
import numpy as np
from sklearn.cluster import KMeans
from sklearn.neighbors import KNeighborsClassifier

from seglab.errors import ConfigError

Pair = tuple[np.ndarray, np.ndarray]  # (image H×W×C, class mask H×W)


class Baseline(Protocol):
    """fit on the training split once, then predict class maps."""

    def fit(self, pairs: Iterable[Pair]) -> None: ...

    def predict(self, image: np.ndarray) -> np.ndarray: ...

    def describe(self) -> dict[str, Any]:
        """What was fitted, for the MLflow params and metrics.json."""
        ...


def _unit(image: np.ndarray) -> np.ndarray:
    """The image as float32 in [0, 1], H×W×C."""
    image = image[..., None] if image.ndim == 2 else image
    return image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image.astype(np.float32)


def _valid_counts(masks: Iterable[np.ndarray], num_classes: int) -> np.ndarray:
    counts = np.zeros(num_classes, dtype=np.int64)
    for mask in masks:
        labels = mask[mask < num_classes]
        counts += np.bincount(labels.ravel(), minlength=num_classes)[:num_classes]
    return counts


class Majority:
    """Every pixel the training split's most frequent class (ignored pixels not counted): the
    floor of aAcc, and of mIoU (one class scored, the others 0)."""

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.label: int | None = None

    def fit(self, pairs: Iterable[Pair]) -> None:
        counts = _valid_counts((mask for _, mask in pairs), self.num_classes)
        if counts.sum() == 0:
            raise ConfigError("majority baseline: the training split has no labelled pixel")
        self.label = int(counts.argmax())

    def predict(self, image: np.ndarray) -> np.ndarray:
        assert self.label is not None, "fit first"
        return np.full(image.shape[:2], self.label, dtype=np.uint8)

    def describe(self) -> dict[str, Any]:
        return {"label": self.label}


class Otsu:
    """A global Otsu threshold per image (OpenCV's, on the grey level: the channel mean), for
    binary-foreground data (Inria buildings, LiTS liver): one side of the threshold is
    `foreground_class`, the other 0. Which side is foreground is fitted once: the side that,
    over the training split, gives the foreground the higher IoU. On data with more classes the
    other classes are never predicted (they score IoU 0)."""

    def __init__(
        self, num_classes: int, ignore_index: int = 255, foreground_class: int = 1
    ) -> None:
        if not 0 < foreground_class < num_classes:
            raise ConfigError(
                f"baseline.otsu.foreground_class={foreground_class}; expected 1..{num_classes - 1}"
            )
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.foreground = foreground_class
        self.bright_is_foreground = True

    @staticmethod
    def above(image: np.ndarray) -> np.ndarray:
        """Pixels above the image's Otsu threshold of its grey level."""
        grey = np.clip(_unit(image).mean(axis=-1) * 255.0, 0, 255).astype(np.uint8)
        threshold, _ = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        return grey > threshold

    def fit(self, pairs: Iterable[Pair]) -> None:
        # Intersections and unions of the foreground with each side, summed over the split.
        inter, union = np.zeros(2), np.zeros(2)
        for image, mask in pairs:
            valid = mask != self.ignore_index
            truth = (mask == self.foreground) & valid
            above = self.above(image)
            for side, predicted in enumerate((above, ~above)):
                predicted = predicted & valid
                inter[side] += (predicted & truth).sum()
                union[side] += (predicted | truth).sum()
        iou = inter / np.maximum(union, 1)
        self.bright_is_foreground = bool(iou[0] >= iou[1])

    def predict(self, image: np.ndarray) -> np.ndarray:
        above = self.above(image)
        foreground = above if self.bright_is_foreground else ~above
        return np.where(foreground, self.foreground, 0).astype(np.uint8)

    def describe(self) -> dict[str, Any]:
        return {
            "foreground_class": self.foreground,
            "bright_is_foreground": self.bright_is_foreground,
        }


class KMeansColour:
    """Colour k-means per image (scikit-learn), each cluster then named by a class.

    How a cluster gets its class: on each training image (up to `fit_images`), the image's own
    k-means clusters are computed the same way, and each cluster's centre colour is labelled
    with the class holding most of the cluster's labelled pixels. At prediction, each cluster
    of the new image takes the class of the nearest such training centre (1-nearest neighbour
    in colour). So only the colour → class association of the training split is used, no
    label of the scored image. k is `clusters` (default: the number of classes); k-means runs
    on `sample_pixels` random pixels per image, then every pixel joins its nearest centre.
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int = 255,
        clusters: int | None = None,
        sample_pixels: int = 4096,
        fit_images: int | None = None,
        seed: int = 0,
    ) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.k = int(clusters or num_classes)
        if self.k < 2:
            raise ConfigError(f"baseline.kmeans.clusters={clusters}; expected at least 2")
        self.sample_pixels = int(sample_pixels)
        self.fit_images = fit_images
        self.seed = seed
        self.centres: np.ndarray | None = None
        self.labels: np.ndarray | None = None
        self.nearest: KNeighborsClassifier | None = None

    def clusters(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(centres k'×C, cluster id per pixel H×W) of one image; k' ≤ k for images with
        fewer distinct colours."""
        pixels = _unit(image).reshape(-1, image.shape[-1] if image.ndim == 3 else 1)
        rng = np.random.default_rng(self.seed)
        sample = pixels[
            rng.choice(len(pixels), min(self.sample_pixels, len(pixels)), replace=False)
        ]
        k = min(self.k, len(np.unique(sample, axis=0)))
        kmeans = KMeans(n_clusters=k, n_init=3, random_state=self.seed).fit(sample)
        return kmeans.cluster_centers_, kmeans.predict(pixels).reshape(image.shape[:2])

    def fit(self, pairs: Iterable[Pair]) -> None:
        centres, labels = [], []
        for i, (image, mask) in enumerate(pairs):
            if self.fit_images is not None and i >= self.fit_images:
                break
            image_centres, assignment = self.clusters(image)
            for c, centre in enumerate(image_centres):
                counts = _valid_counts([mask[assignment == c]], self.num_classes)
                if counts.sum():  # a cluster of ignored pixels only says nothing
                    centres.append(centre)
                    labels.append(int(counts.argmax()))
        if not centres:
            raise ConfigError("kmeans baseline: the training split has no labelled pixel")
        self.centres, self.labels = np.stack(centres), np.array(labels)
        self.nearest = KNeighborsClassifier(n_neighbors=1).fit(self.centres, self.labels)

    def predict(self, image: np.ndarray) -> np.ndarray:
        assert self.nearest is not None, "fit first"
        centres, assignment = self.clusters(image)
        return self.nearest.predict(centres).astype(np.uint8)[assignment]

    def describe(self) -> dict[str, Any]:
        return {
            "clusters": self.k,
            "training_centres": 0 if self.centres is None else len(self.centres),
        }


METHODS = {"majority": Majority, "otsu": Otsu, "kmeans": KMeansColour}


def build_baseline(
    method: str, num_classes: int, ignore_index: int, settings: dict[str, Any] | None
) -> Baseline:
    """The baseline `method` with its settings (`baseline.yaml`'s block of that name)."""
    if method not in METHODS:
        raise ConfigError(f"method={method!r}; expected one of {', '.join(METHODS)}")
    try:
        return METHODS[method](num_classes, ignore_index, **(settings or {}))
    except TypeError as error:
        raise ConfigError(f"{method}: unknown settings in {settings}: {error}") from error
