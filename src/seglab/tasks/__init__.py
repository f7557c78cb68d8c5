"""LightningModules, one per kind of segmentation; a model config's `task` key picks one."""

from __future__ import annotations

from seglab.errors import ConfigError
from seglab.tasks.base import SegmentationTask
from seglab.tasks.instance import InstanceSegmentationTask
from seglab.tasks.semantic import SemanticSegmentationTask

TASKS: dict[str, type[SegmentationTask]] = {
    "semantic": SemanticSegmentationTask,
    "instance": InstanceSegmentationTask,
}


def task_class(name: str) -> type[SegmentationTask]:
    """The task class for `model.task`."""
    if name not in TASKS:
        raise ConfigError(f"model.task={name!r}; expected one of {sorted(TASKS)}")
    return TASKS[name]


__all__ = [
    "TASKS",
    "InstanceSegmentationTask",
    "SegmentationTask",
    "SemanticSegmentationTask",
    "task_class",
]
