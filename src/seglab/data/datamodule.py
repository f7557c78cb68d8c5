"""One LightningDataModule for every dataset: the dataset class comes from config, the kind of
target (class masks, or instances too) from the task that trains on it (`SegmentationTask.targets`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytorch_lightning as pl
import torch.distributed as dist
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from pytorch_lightning.utilities import rank_zero_warn
from torch.utils.data import DataLoader, Dataset

from seglab.data.base import SKIPPED_KEY, BadSampleWarning, role_splits
from seglab.data.instances import InstanceDataset, InstanceSpec, collate_instances
from seglab.data.transforms import IMAGENET_MEAN, IMAGENET_STD, Steps, build_transform
from seglab.data.workers import loader_context
from seglab.errors import ConfigError

TARGETS = ("masks", "instances")  # what a sample holds besides the image


class SegmentationDataModule(pl.LightningDataModule):
    """Builds train/val/test datasets from `dataset(split=..., transform=...)`.

    The class metadata (names, palette, ignore index) lives here too, so the task, the metrics
    and the overlays all read it from one place: the data config.
    """

    def __init__(
        self,
        dataset: Callable[..., Dataset],
        name: str,
        num_classes: int,
        class_names: Sequence[str],
        palette: Sequence[Sequence[int]],
        ignore_index: int = 255,
        in_channels: int = 3,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        splits: dict[str, str] | None = None,
        train_transforms: Steps = None,  # name → step (null entries skipped), or a list
        val_transforms: Steps = None,
        batch_size: int = 8,
        val_batch_size: int | None = None,
        num_workers: int = 2,
        pin_memory: bool = False,
        prepare: Callable[[], Any] | None = None,
        max_pixel_value: float = 255.0,
        targets: str = "masks",
        instance: Mapping[str, Any] | None = None,
        normalize_on_device: bool = True,
        **extra: Any,  # dataset-specific keys other entries interpolate (e.g. image_size)
    ) -> None:
        super().__init__()
        if len(class_names) != num_classes:
            raise ConfigError(
                f"data.class_names has {len(class_names)} names but data.num_classes={num_classes}"
            )
        if targets not in TARGETS:
            raise ConfigError(f"targets={targets!r}; the data serves {' or '.join(TARGETS)}")
        self.dataset_factory = dataset
        # Which classes form instances (data.instance), checked now: instance targets only.
        self.instance_spec = (
            InstanceSpec.from_config(instance, num_classes) if targets == "instances" else None
        )
        self.name = name
        self.num_classes = num_classes
        self.class_names = list(class_names)
        self.palette = [tuple(c) for c in palette]
        self.ignore_index = ignore_index
        self.in_channels = in_channels
        self.mean, self.std = list(mean), list(std)
        self.splits = role_splits(splits)
        # Images a reader returns as floats in [0, 1] (CT) set max_pixel_value=1.
        # Training batches of 8-bit images travel as uint8 and the task normalises them on the
        # device (SegmentationTask.transfer_batch_to_device): a quarter of the bytes, and a pass
        # less in every worker. Validation and test items stay normalised: overlays and
        # inference read them one at a time.
        self.train_transform = build_transform(
            train_transforms, mean, std, max_pixel_value, uint8_on_device=normalize_on_device
        )
        self.val_transform = build_transform(val_transforms, mean, std, max_pixel_value)
        # Bad files passed over with data.skip_bad=true, gathered from the batches, since
        # DataLoader workers cannot report back otherwise.
        self.skipped: set[str] = set()
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size or batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.prepare = prepare
        self.extra = extra  # kept for inspection; the DataModule itself does not read them
        self.train_dataset: Dataset | None = None
        self.val_dataset: Dataset | None = None
        self.test_dataset: Dataset | None = None

    def prepare_data(self) -> None:
        # Runs once per node (rank 0): generate or cache data before any rank reads it.
        if self.prepare is not None:
            self.prepare()

    def setup(self, stage: str | None = None) -> None:
        # Idempotent: train.py sets up once before the MLflow run exists, so a bad dataset root
        # fails before anything is recorded; Lightning's own call then finds it done.
        if stage in (None, "fit") and self.train_dataset is None:
            self.train_dataset = self.make_dataset("train")
        if stage in (None, "fit", "validate") and self.val_dataset is None:
            self.val_dataset = self.make_dataset("val")
        if stage in (None, "test") and self.test_dataset is None:
            self.test_dataset = self.make_dataset("test")

    def make_dataset(self, role: str) -> Dataset:
        """The dataset for a role (train/val/test) with that role's split and transform."""
        transform = self.train_transform if role == "train" else self.val_transform
        if self.instance_spec is None:
            return self.dataset_factory(split=self.splits[role], transform=transform)
        # The reader's raw samples, transformed together with their instance masks.
        reader = self.dataset_factory(split=self.splits[role], transform=None)
        return InstanceDataset(reader, self.instance_spec, transform)

    def _loader(self, dataset: Dataset | None, train: bool) -> DataLoader:
        assert dataset is not None, "call setup() first"
        sampler = None
        if not train and dist.is_available() and dist.is_initialized():
            # Lightning's default DistributedSampler pads ranks with repeated images, which would
            # count them twice in the summed confusion matrix; this one gives each image once.
            sampler = UnrepeatedDistributedSampler(dataset, shuffle=False)
        return DataLoader(
            dataset,
            batch_size=self.batch_size if train else self.val_batch_size,
            shuffle=train,
            sampler=sampler,
            drop_last=train and len(dataset) > self.batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            # inside a joblib (loky) job: the platform's start method, not loky's (workers.py)
            multiprocessing_context=loader_context() if self.num_workers > 0 else None,
            collate_fn=collate_instances if self.instance_spec is not None else None,
        )

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if isinstance(batch, dict) and SKIPPED_KEY in batch:
            self.skipped.update(name for name in batch.pop(SKIPPED_KEY) if name)
        return batch

    def teardown(self, stage: str) -> None:
        if self.skipped:
            names = sorted(self.skipped)
            shown = ", ".join(names[:5]) + (
                f" (and {len(names) - 5} more)" if len(names) > 5 else ""
            )
            rank_zero_warn(
                f"{self.name}: skipped {len(names)} bad file(s) (data.skip_bad=true): {shown}",
                category=BadSampleWarning,
            )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_dataset, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_dataset, train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_dataset, train=False)
