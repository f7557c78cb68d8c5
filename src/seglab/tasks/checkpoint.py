"""Opening seglab checkpoints safely (`weights_only=True`) with errors a user can act on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from seglab.errors import SeglabError

REQUIRED_HPARAMS = ("model", "loss", "data")


def read_checkpoint(ckpt_path: str | Path) -> dict[str, Any]:
    """The checkpoint dict, opened with `weights_only=True`, checked to be seglab's."""
    path = Path(ckpt_path)
    if not path.is_file():
        raise SeglabError(f"ckpt_path={str(path)!r}: no such file (expected a .ckpt from train.py)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unpickling failure means the same to a user
        raise SeglabError(
            f"ckpt_path={str(path)!r} cannot be opened safely (weights_only=True): {error}"
        ) from error
    hparams = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not hparams or any(key not in hparams for key in REQUIRED_HPARAMS):
        raise SeglabError(
            f"ckpt_path={str(path)!r} is not a seglab checkpoint: its hyper_parameters lack "
            f"{', '.join(REQUIRED_HPARAMS)}"
        )
    return ckpt


def load_task(
    ckpt_path: str | Path, map_location: str | torch.device = "cpu"
) -> pl.LightningModule:
    """Rebuild the task (model, loss, class metadata) from the checkpoint alone, reading it once."""
    from seglab.tasks import task_class

    ckpt = read_checkpoint(ckpt_path)
    hparams = ckpt["hyper_parameters"]
    task = task_class(hparams["model"].get("task", "semantic"))(**hparams)
    task.load_state_dict(ckpt["state_dict"])
    return task.to(map_location).eval()
