"""Dataset lineage: each run's train and val splits as MLflow dataset inputs.

A split is named `<data.name>/<split>`, sourced at the data root, and fingerprinted by a digest
of its sample ids and the sizes of their files, so two runs on different splits or copies of a
dataset show different digests in the runs table's Dataset column, and the same data the same.
Sample ids and file sizes are read, never the files: cheap even for VOC's 10582 training ids.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mlflow.data.dataset import Dataset
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.entities import Dataset as DatasetEntity
from mlflow.entities import DatasetInput, InputTag
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

from seglab.tracking.logger import SeglabMLFlowLogger

DIGEST_LENGTH = 16  # hex characters of sha256 (MLflow stores at most 36)
# The dataset input's context per role: the names MLflow's own autologging uses.
CONTEXTS = {"train": "training", "val": "validation"}


class SampleReader(Protocol):
    """What a seglab reader exposes about its samples (data/base.py's SegmentationReader)."""

    def __len__(self) -> int: ...
    def sample_id(self, index: int) -> str: ...
    def sample_paths(self, index: int) -> dict[str, Path]: ...


@dataclass(frozen=True)
class SplitManifest:
    """One split's identity: its name, where it is read from, its ids and their files' bytes."""

    name: str
    root: str
    ids: tuple[str, ...]
    sizes: tuple[int, ...]

    @property
    def digest(self) -> str:
        """sha256 over `id<TAB>bytes` lines in reading order: another split, another copy (files
        of other sizes) or another order gives another digest."""
        lines = "".join(f"{i}\t{s}\n" for i, s in zip(self.ids, self.sizes, strict=True))
        return hashlib.sha256(lines.encode()).hexdigest()[:DIGEST_LENGTH]


def split_manifest(reader: SampleReader, name: str, root: str | Path) -> SplitManifest:
    """The manifest of `reader`'s samples; each file is stat'ed once even when samples share it
    (LiTS slices share their volume)."""
    sizes: dict[Path, int] = {}

    def size(path: Path) -> int:
        if path not in sizes:
            sizes[path] = path.stat().st_size if path.is_file() else 0
        return sizes[path]

    ids, totals = [], []
    for index in range(len(reader)):
        ids.append(str(reader.sample_id(index)))
        totals.append(sum(size(Path(p)) for p in reader.sample_paths(index).values()))
    return SplitManifest(name, str(Path(root).resolve()), tuple(ids), tuple(totals))


class SplitDataset(Dataset):
    """An MLflow dataset that is metadata only: the split's manifest, not its pixels."""

    def __init__(self, manifest: SplitManifest) -> None:
        self.manifest = manifest
        with warnings.catch_warnings():  # "can be interpreted in multiple ways": it is a folder
            warnings.simplefilter("ignore", UserWarning)
            source = resolve_dataset_source(manifest.root)
        super().__init__(source=source, name=manifest.name, digest=manifest.digest)

    def _compute_digest(self) -> str:
        return self.manifest.digest

    @property
    def profile(self) -> dict[str, Any]:
        return {"num_samples": len(self.manifest.ids), "num_bytes": sum(self.manifest.sizes)}

    @property
    def schema(self) -> None:
        return None

    def to_dict(self) -> dict[str, str]:
        return {**super().to_dict(), "profile": json.dumps(self.profile)}


def dataset_inputs(manifests: Iterable[tuple[str, SplitManifest]]) -> list[DatasetInput]:
    """`(role, manifest)` pairs (role train/val) as MLflow dataset inputs with their context."""
    return [
        DatasetInput(
            DatasetEntity(**SplitDataset(manifest).to_dict()),
            tags=[InputTag(MLFLOW_DATASET_CONTEXT, CONTEXTS.get(role, role))],
        )
        for role, manifest in manifests
    ]


def log_splits(
    logger: SeglabMLFlowLogger, splits: dict[str, Any], name: str, root: str | Path
) -> list[SplitManifest]:
    """Log each `{role: dataset}` split that lists its samples as a dataset input of the run.

    A dataset wrapping a reader (instance targets) is described by its reader; one that lists no
    samples is left out. A store failure is a warning in the run's summary, not fatal.
    """
    manifests = []
    for role, dataset in splits.items():
        reader = getattr(dataset, "reader", dataset)
        if dataset is None or not hasattr(reader, "sample_id"):
            continue
        manifests.append((role, split_manifest(reader, f"{name}/{role}", root)))
    if manifests:
        try:
            logger.experiment.log_inputs(logger.run_id, datasets=dataset_inputs(manifests))
        except Exception as error:  # noqa: BLE001 - lineage must not end training
            logger.store_errors.append(f"logging the dataset inputs: {type(error).__name__}")
            warnings.warn(
                f"MLflow could not log the dataset inputs ({type(error).__name__}: {error})",
                stacklevel=2,
            )
    return [m for _, m in manifests]
