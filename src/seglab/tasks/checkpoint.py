"""Opening seglab checkpoints safely (`weights_only=True`) with errors a user can act on."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from seglab.errors import ConfigError, SeglabError
from seglab.resolvers import auto_precision
from seglab.tasks import TASKS, task_class
from seglab.tasks.base import PRECISION_KEY, SegmentationTask

# `loss` is not required: tasks that train without one (uses_loss=False) do not keep it.
REQUIRED_HPARAMS = ("model", "data")

MODEL_KEYS_SHOWN = ("arch", "encoder", "in_channels", "num_classes")  # what tells models apart
FIRST_N = 3  # mismatching tensors named in an error


def read_checkpoint(ckpt_path: str | Path, mmap: bool = False) -> dict[str, Any]:
    """The checkpoint dict, opened with `weights_only=True`, checked to be seglab's.

    `mmap=True` maps the file instead of reading it: only the tensors used are read (the weights
    without the optimizer state, twice their size), for callers done with it before returning.
    """
    path = Path(ckpt_path)
    if not path.is_file():
        raise SeglabError(f"ckpt_path={str(path)!r}: no such file (expected a .ckpt from train.py)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
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
    if "state_dict" not in ckpt:
        raise SeglabError(f"ckpt_path={str(path)!r} holds no state_dict (weights)")
    return ckpt


def checkpoint_precision(ckpt: Mapping[str, Any], accelerator: str = "auto") -> str:
    """The precision the checkpoint's run validated at, so its logged scores are reproduced
    (Lightning itself runs a 16-mixed checkpoint as bf16-mixed on a CPU). Checkpoints from
    before the precision was recorded get the hardware's automatic choice."""
    return str(ckpt.get(PRECISION_KEY) or auto_precision(accelerator))


def model_differences(trained: Mapping[str, Any], given: Mapping[str, Any]) -> list[str]:
    """`model.<key>: checkpoint X, given Y` for every model key that differs."""
    keys = [k for k in dict.fromkeys([*trained, *given]) if not str(k).startswith("_")]
    return [
        f"model.{k}: checkpoint {trained.get(k)!r}, given {given.get(k)!r}"
        for k in keys
        if trained.get(k) != given.get(k)
    ]


def weight_mismatch(expected: Mapping[str, Tensor], found: Mapping[str, Tensor]) -> list[str]:
    """What keeps `found` (a checkpoint's state dict) from loading into `expected`'s model."""
    shapes = [
        f"{k}: checkpoint {list(found[k].shape)}, model {list(v.shape)}"
        for k, v in expected.items()
        if k in found and tuple(found[k].shape) != tuple(v.shape)
    ]
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    problems = []
    for label, items in (
        ("differ in shape", shapes),
        ("are missing from the checkpoint", missing),
        ("are in the checkpoint but not in the model", unexpected),
    ):
        if items:
            more = f", … {len(items) - FIRST_N} more" if len(items) > FIRST_N else ""
            problems.append(f"{len(items)} tensors {label} ({'; '.join(items[:FIRST_N])}{more})")
    return problems


def _describe(model: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={model[k]!r}" for k in MODEL_KEYS_SHOWN if k in model)


def check_class_count(hparams: Mapping[str, Any], data: Mapping[str, Any], path: Path) -> None:
    """A checkpoint scores or predicts only data with its own number of classes."""
    trained = hparams["data"]
    given = data.get("num_classes")
    if given is not None and int(given) != int(trained["num_classes"]):
        raise ConfigError(
            f"ckpt_path={str(path)!r} predicts {trained['num_classes']} classes "
            f"({', '.join(trained['class_names'])}) but data.num_classes={given} "
            f"(data {data.get('name', '?')!r}); choose data with the checkpoint's classes"
        )


def load_task(
    ckpt_path: str | Path,
    map_location: str | torch.device = "cpu",
    model: Mapping[str, Any] | None = None,
    infer: Mapping[str, Any] | None = None,
    ckpt: Mapping[str, Any] | None = None,
    tool: str | None = None,
) -> SegmentationTask:
    """Rebuild the task from the checkpoint alone (read once) and load its weights.

    `model` replaces the checkpoint's model config (eval.py's `model=`); when the weights do not
    fit it, or do not fit the checkpoint's own config, the error says what differs.
    `infer` sets how evaluation/prediction compute logits (conf/infer). `ckpt`: the already read
    checkpoint, when the caller needed it first. `tool`: the calling tool's name; a task kind
    it does not handle (`SegmentationTask.handled_by`) is refused with a message.
    """
    path = Path(ckpt_path)
    ckpt = ckpt if ckpt is not None else read_checkpoint(path)
    hparams = dict(ckpt["hyper_parameters"])
    kind = hparams["model"].get("task", "semantic")
    if tool is not None and not task_class(kind).handled_by(tool):
        able = [name for name, cls in TASKS.items() if cls.handled_by(tool)]
        raise ConfigError(
            f"ckpt_path={str(path)!r} is an {kind} segmentation checkpoint "
            f"({hparams['model'].get('name')}); {tool} handles "
            f"{' and '.join(able)} ones. {task_class(kind).refusal_hint}"
        )
    differences: list[str] = []
    if model is not None:
        differences = model_differences(hparams["model"], model)
        hparams["model"] = dict(model)
    task = task_class(hparams["model"].get("task", "semantic"))(**hparams)
    problems = weight_mismatch(task.state_dict(), ckpt["state_dict"])
    if problems:
        given = f"the given model ({'; '.join(differences)})" if differences else "its own model"
        raise ConfigError(
            f"ckpt_path={str(path)!r}: its weights ({_describe(ckpt['hyper_parameters']['model'])})"
            f" do not fit {given}: " + "; ".join(problems)
        )
    task.load_state_dict(ckpt["state_dict"])
    if infer is not None:
        task.set_inference(dict(infer))
    return task.to(map_location).eval()
