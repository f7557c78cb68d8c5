"""Metrics per group of samples (a CT case, a city), declared in the data config.

The dataset puts the group (an int) into each item as `group`; `data.extra_metrics` lists the
metrics, built by the task into a ModuleDict and logged as `val/<name>` once per epoch.
Both are torchmetrics Metrics, so their sums are reduced across DDP ranks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import hydra.utils
import torch
from torch import Tensor, nn
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from seglab.errors import ConfigError

GROUP_KEY = "group"


class GroupedDice(Metric):
    """Dice per case (mean over cases) and global (one ratio over all voxels) per class set.

    `classes` maps a name to the label ids it merges, e.g. `{liver: [1, 2], tumour: [2]}` for
    LiTS (liver ≥ 1). A case in which a class set is absent from both prediction and label
    scores 1 (the LiTS convention), so tumour-free cases predicted tumour-free count as right.
    """

    full_state_update = False

    def __init__(self, classes: Mapping[str, Sequence[int]], ignore_index: int = 255) -> None:
        super().__init__()
        self.names = list(classes)
        self.ids = [torch.as_tensor(list(v)) for v in classes.values()]
        self.ignore_index = ignore_index
        # One row per image: [group, I_1..I_k, P_1..P_k, L_1..L_k].
        self.add_state("rows", default=[], dist_reduce_fx="cat")

    def update(self, preds: Tensor, target: Tensor, groups: Tensor) -> None:
        valid = target != self.ignore_index
        inter, pred, label = [], [], []
        for ids in self.ids:
            ids = ids.to(preds.device)
            p = torch.isin(preds, ids) & valid
            t = torch.isin(target, ids) & valid
            inter.append((p & t).flatten(1).sum(1))
            pred.append(p.flatten(1).sum(1))
            label.append(t.flatten(1).sum(1))
        groups = torch.as_tensor(groups, device=preds.device).reshape(-1)
        self.rows.append(torch.stack([groups, *inter, *pred, *label], dim=1).double())

    def compute(self) -> dict[str, Tensor]:
        rows = dim_zero_cat(self.rows)
        k = len(self.names)
        cases, index = torch.unique(rows[:, 0], return_inverse=True)
        sums = torch.zeros(len(cases), 3 * k, dtype=rows.dtype, device=rows.device)
        sums.index_add_(0, index, rows[:, 1:])
        inter, pred, label = sums[:, :k], sums[:, k : 2 * k], sums[:, 2 * k :]
        denom = pred + label
        per_case = torch.where(denom > 0, 2 * inter / denom.clamp_min(1), torch.ones_like(denom))
        total = denom.sum(0)
        global_ = torch.where(total > 0, 2 * inter.sum(0) / total.clamp_min(1), torch.nan)
        out = {}
        for i, name in enumerate(self.names):
            out[f"dice_per_case/{name}"] = per_case[:, i].mean().float()
            out[f"dice_global/{name}"] = global_[i].float()
        return out


class GroupedIoU(Metric):
    """IoU of one class per group (e.g. building IoU per Inria city): `IoU_city/<name>`."""

    full_state_update = False

    def __init__(
        self,
        class_id: int,
        group_names: Sequence[str],
        ignore_index: int = 255,
        prefix: str = "IoU_city",
    ) -> None:
        super().__init__()
        self.class_id = class_id
        self.group_names = list(group_names)
        self.ignore_index = ignore_index
        self.prefix = prefix
        n = len(self.group_names)
        self.add_state("inter", default=torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("union", default=torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor, groups: Tensor) -> None:
        valid = target != self.ignore_index
        p = (preds == self.class_id) & valid
        t = (target == self.class_id) & valid
        groups = torch.as_tensor(groups, device=preds.device).reshape(-1).long()
        if groups.numel() and (groups.min() < 0 or groups.max() >= len(self.group_names)):
            raise ConfigError(
                f"sample group {groups.max().item()} has no name in group_names {self.group_names}"
            )
        self.inter.index_add_(0, groups, (p & t).flatten(1).sum(1).double())
        self.union.index_add_(0, groups, (p | t).flatten(1).sum(1).double())

    def compute(self) -> dict[str, Tensor]:
        iou = torch.where(self.union > 0, self.inter / self.union.clamp_min(1), torch.nan)
        return {f"{self.prefix}/{n}": iou[i].float() for i, n in enumerate(self.group_names)}


def build_grouped_metrics(
    specs: Sequence[Mapping[str, Any]] | None, ignore_index: int
) -> nn.ModuleDict:
    """`data.extra_metrics` → a ModuleDict (empty when none are declared)."""
    metrics = {}
    for i, spec in enumerate(specs or []):
        metric = hydra.utils.instantiate(dict(spec), ignore_index=ignore_index, _convert_="all")
        metrics[f"{type(metric).__name__}_{i}"] = metric
    return nn.ModuleDict(metrics)


def update_grouped_metrics(metrics: nn.ModuleDict, preds: Tensor, batch: Mapping[str, Any]) -> None:
    """Feed one validation batch to every grouped metric."""
    if not len(metrics):
        return
    if GROUP_KEY not in batch:
        raise ConfigError(
            f"data.extra_metrics ({', '.join(metrics)}) need a '{GROUP_KEY}' in each sample, "
            "which this dataset does not provide"
        )
    for metric in metrics.values():
        metric.update(preds, batch["mask"], batch[GROUP_KEY])


def compute_grouped_metrics(metrics: nn.ModuleDict) -> dict[str, float]:
    """Every metric's values (finite ones only), then reset for the next epoch."""
    out: dict[str, float] = {}
    for metric in metrics.values():
        if metric.update_count:
            out.update({k: float(v) for k, v in metric.compute().items() if torch.isfinite(v)})
        metric.reset()
    return out
