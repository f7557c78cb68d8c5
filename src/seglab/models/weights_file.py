"""Pretrained weights from a local file, for cluster nodes that cannot download.

`model.encoder_weights=/path` (smp), `model.weights=/path` and `model.weights_backbone=/path`
(torchvision's models, Mask R-CNN) name a saved state dict: the module's own, a wrapper of it
({"state_dict": ...}, {"model": ...}: Lightning, timm and torchvision training scripts), or a
classification checkpoint (timm / torchvision) whose keys map onto the module once a known
prefix is dropped or added and the classifier head is left out. Anything else is an error that
lists a few of the keys that do not fit, rather than a silently half-loaded network.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from torch import Tensor, nn

from seglab.errors import ConfigError

WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors")
# Prefixes a saved module's keys may carry that the module here does not (DDP, wrappers, a
# whole segmentation model around its encoder) or lacks that the module has (smp's timm
# encoder keeps the timm model under `model.`).
_STRIP = ("module.", "model.", "encoder.", "backbone.", "backbone.body.", "net.", "net.encoder.")
_ADD = ("model.",)
# Classification heads a backbone checkpoint carries and a segmentation encoder does not.
CLASSIFIER_PREFIXES = ("fc.", "classifier.", "head.", "last_linear.", "head_drop.")
SHOWN = 3  # keys listed per kind of misfit


def is_weights_file(value: object) -> bool:
    """Whether a weights setting names a file (else a library's weights name: imagenet, DEFAULT)."""
    if not isinstance(value, str) or not value:
        return False
    path = Path(value).expanduser()
    return path.suffix in WEIGHT_SUFFIXES or "/" in value or path.exists()


def read_state_dict(path: str, key: str) -> dict[str, Tensor]:
    """The state dict saved in `path` (unwrapped from {"state_dict"|"model"|"module": ...}),
    opened safely (`weights_only=True`, or safetensors)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"model.{key}={path!r}: no such file (a saved state dict)")
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(file))
        else:
            state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unpickling failure means the same here
        raise ConfigError(
            f"model.{key}={path!r} cannot be opened as a state dict: {error}"
        ) from error
    for wrapper in ("state_dict", "model", "module"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ConfigError(f"model.{key}={path!r} holds no state dict (name → tensor)")
    return state


def _renamings(keys: Iterable[str]) -> list[dict[str, str]]:
    """Candidate {file key → module key} maps: as saved, one prefix dropped, one added."""
    keys = list(keys)
    maps = [{k: k for k in keys}]
    for prefix in _STRIP:
        if any(k.startswith(prefix) for k in keys):
            maps.append({k: k.removeprefix(prefix) for k in keys})
    maps.extend({k: prefix + k for k in keys} for prefix in _ADD)
    return maps


def load_weights_file(
    module: nn.Module,
    path: str,
    key: str,
    what: str,
    resized: tuple[str, ...] = (),
) -> list[str]:
    """Load `path` into `module` (`what` names it in messages); returns the module keys left
    as built because their file tensor has another shape and they start with one of `resized`
    (heads sized to the data's classes). Any other key that does not fit is a ConfigError."""
    state = read_state_dict(path, key)
    expected = module.state_dict()
    renaming = max(_renamings(state), key=lambda m: len(set(m.values()) & expected.keys()))
    renamed = {renaming[k]: v for k, v in state.items()}
    missing = [k for k in expected if k not in renamed and not k.endswith("num_batches_tracked")]
    unexpected = [
        new
        for old, new in renaming.items()
        if new not in expected and not old.startswith(CLASSIFIER_PREFIXES)
    ]
    kept_as_built, wrong_shape = [], []
    for name, tensor in renamed.items():
        if name in expected and tensor.shape != expected[name].shape:
            if name.startswith(resized):
                kept_as_built.append(name)
            else:
                wrong_shape.append(
                    f"{name} {tuple(tensor.shape)} in the file, {tuple(expected[name].shape)} here"
                )
    problems = [
        f"{len(found)} {kind}: {', '.join(found[:SHOWN])}{', ...' if len(found) > SHOWN else ''}"
        for kind, found in (
            ("missing from the file", missing),
            ("in the file but not in the model", unexpected),
            ("of another shape", wrong_shape),
        )
        if found
    ]
    if problems:
        raise ConfigError(f"model.{key}={path!r} does not fit {what}: " + "; ".join(problems))
    loadable = {k: v for k, v in renamed.items() if k in expected and k not in kept_as_built}
    module.load_state_dict(loadable, strict=False)
    return kept_as_built
