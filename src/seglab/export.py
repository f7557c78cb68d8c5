"""Export a checkpoint's network to ONNX or TorchScript, for serving without seglab.

The exported model takes a float32 B×C×H×W image and returns B×K×H×W logits at the input's
size. With `normalize=true` the input is the raw image in 0–255 (RGB order) and the dataset's
mean/std are applied inside the graph; otherwise it expects what validation feeds the model:
`(image / 255 - mean) / std`. Any size is accepted: the graph pads to multiples of 32 with the
task's own function (`seglab.inference.padding.pad_to_stride`: reflect, replicate for sides of
16 px or less) and crops back. A `<output>.json` next to the model records all of this plus
the class names and palette.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

from seglab.errors import ConfigError, SeglabError
from seglab.inference.padding import OUTPUT_STRIDE, pad_to_stride
from seglab.resolvers import training_crop
from seglab.tasks.checkpoint import load_task

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
# torch.export takes a side of 1 in the example for a constant; any other size is traced as
# dynamic, and the graph then takes every size ≥ 1 (pad_to_stride handles thin images).
MIN_EXAMPLE_SIDE = 2
PARITY_TOLERANCE = 1e-4  # max |Δ logits| / (max |logit| + 1) accepted by check_parity
EXTERNAL_DATA_BYTES = 1_800_000_000  # protobuf's 2 GB limit: larger weights go to a side file


class ExportableSegmenter(nn.Module):
    """The network plus what the task does around it: normalisation, padding to the stride."""

    def __init__(
        self, net: nn.Module, mean: Sequence[float], std: Sequence[float], normalize: bool
    ) -> None:
        super().__init__()
        self.net = net
        self.normalize = normalize
        self.stride = OUTPUT_STRIDE
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, image: Tensor) -> Tensor:
        if self.normalize:
            image = (image / 255.0 - self.mean) / self.std
        height, width = image.shape[-2], image.shape[-1]
        logits = self.net(pad_to_stride(image, self.stride))
        return logits[:, :, :height, :width]


def _example(channels: int, size: Sequence[int]) -> Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.rand(1, channels, int(size[0]), int(size[1]), generator=generator) * 255


def export_onnx(model: nn.Module, example: Tensor, path: Path, opset: int) -> None:
    """Dynamo export with dynamic batch, height and width."""
    batch, height, width = (torch.export.Dim(n, min=1) for n in ("batch", "h", "w"))
    big = sum(p.numel() * p.element_size() for p in model.parameters()) > EXTERNAL_DATA_BYTES
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=["image"],
            output_names=["logits"],
            opset_version=opset,
            dynamo=True,
            verbose=False,
            external_data=big,
            dynamic_shapes={"image": {0: batch, 2: height, 3: width}},
        )


def export_torchscript(model: ExportableSegmenter, example: Tensor, path: Path) -> None:
    """The network traced (smp nets do not script), the wrapper around it scripted, so padding
    and cropping follow the input's size rather than the example's."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        inputs = (example / 255.0 - model.mean) / model.std if model.normalize else example
        model.net = torch.jit.trace(
            model.net, pad_to_stride(inputs, model.stride), check_trace=False
        )
        scripted = torch.jit.script(model)
    scripted.save(str(path))


def run_exported(path: Path, fmt: str, image: Tensor) -> Tensor:
    """Logits of an exported model, through onnxruntime or torch.jit (not through seglab)."""
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return torch.from_numpy(session.run(None, {"image": image.numpy()})[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
        module = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        return module(image)


def export_checkpoint(
    ckpt_path: str | Path,
    fmt: str,
    output: str | Path | None = None,
    normalize: bool = True,
    example_size: Sequence[int] | None = None,
    opset: int = 18,
    check: bool = True,
) -> tuple[Path, Path]:
    """Write the model and its `<output>.json` description; returns both paths."""
    if fmt not in FORMATS:
        raise ConfigError(f"format={fmt!r}; expected one of {', '.join(FORMATS)}")
    task = load_task(ckpt_path, tool="export.py")
    data: dict[str, Any] = task.hparams["data"]
    channels = int(data.get("in_channels", 3))
    size = list(example_size or [training_crop(data) or 256] * 2)
    if min(int(s) for s in size) < MIN_EXAMPLE_SIDE:
        raise ConfigError(f"example_size={size}: sides must be ≥ {MIN_EXAMPLE_SIDE}")
    path = Path(output) if output else Path(ckpt_path).with_suffix(FORMATS[fmt])
    path.parent.mkdir(parents=True, exist_ok=True)
    if task.predicts_instances:
        path = path.with_suffix(FORMATS["torchscript"]) if not output else path
        info = {
            "format": fmt,
            "checkpoint": str(Path(ckpt_path).resolve()),
            **export_instance_model(task, data, fmt, path, normalize, check),
            "mean": list(data["mean"]),
            "std": list(data["std"]),
            "normalize_inside": normalize,
            "class_names": list(data["class_names"]),
            "palette": [list(c) for c in data["palette"]],
        }
        info_path = path.with_suffix(path.suffix + ".json")
        info_path.write_text(json.dumps(info, indent=2))
        return path, info_path
    net = task.net.to(memory_format=torch.contiguous_format).float().eval()
    model = ExportableSegmenter(net, data["mean"], data["std"], normalize).eval()
    example = _example(channels, size)
    if not normalize:
        example = (example / 255 - model.mean) / model.std
    try:
        if fmt == "onnx":
            export_onnx(model, example, path, opset)
        else:
            export_torchscript(model, example, path)
    except Exception as error:  # noqa: BLE001 - exporters raise many types; say which model
        raise SeglabError(
            f"exporting {data['name']} {task.hparams['model'].get('arch')} to {fmt} failed: {error}"
        ) from error
    info = {
        "format": fmt,
        "checkpoint": str(Path(ckpt_path).resolve()),
        "input": {
            "name": "image",
            "shape": ["batch", channels, "height", "width"],
            "dtype": "float32",
            "min_side": 1,
            "expects": "RGB in 0..255, normalised inside the model"
            if normalize
            else "(image / 255 - mean) / std, channels first",
        },
        "output": {"name": "logits", "shape": ["batch", data["num_classes"], "height", "width"]},
        "mean": list(data["mean"]),
        "std": list(data["std"]),
        "normalize_inside": normalize,
        "class_names": list(data["class_names"]),
        "palette": [list(c) for c in data["palette"]],
        "ignore_index": data["ignore_index"],
    }
    if check:
        info["max_abs_diff"] = check_parity(task, model, path, fmt, example)
    info_path = path.with_suffix(path.suffix + ".json")
    info_path.write_text(json.dumps(info, indent=2))
    return path, info_path


def check_parity(
    task: Any, model: ExportableSegmenter, path: Path, fmt: str, example: Tensor
) -> float:
    """Exported vs checkpoint logits on a batch of 2 at a size unlike the example's; the error
    is relative to the logits' range, since float32 kernels differ in summation order."""
    height, width = example.shape[-2] + 13, example.shape[-1] + 7
    image = torch.rand(
        2, example.shape[1], height, width, generator=torch.Generator().manual_seed(1)
    )
    image = image * 255 if model.normalize else (image - 0.5) / 0.25
    normalised = (image / 255.0 - model.mean) / model.std if model.normalize else image
    with torch.no_grad():
        expected = task(normalised.contiguous())
    got = run_exported(path, fmt, image)
    diff = float((got - expected).abs().max())
    scale = float(expected.abs().max()) + 1.0
    if got.shape != expected.shape or diff > PARITY_TOLERANCE * scale:
        raise SeglabError(
            f"the exported {fmt} model at {path} does not reproduce the checkpoint: "
            f"output {tuple(got.shape)} vs {tuple(expected.shape)}, max |Δ| {diff:.3g}"
        )
    return diff


class ExportableDetector(nn.Module):
    """An instance model (Mask R-CNN) for one image: C×H×W float → (boxes [N,4] xyxy, class ids
    [N] of the dataset, scores [N], mask probabilities [N,1,H,W]); normalisation inside with
    `normalize` (RGB 0..255 in), as for the semantic export. Scripted, not traced: the number
    of detections and the image size vary."""

    def __init__(
        self,
        net: nn.Module,
        class_of_label: Tensor,
        mean: Sequence[float],
        std: Sequence[float],
        normalize: bool,
    ) -> None:
        super().__init__()
        self.net = net
        self.normalize = normalize
        self.register_buffer("class_of_label", class_of_label.clone())
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(-1, 1, 1))

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        if self.normalize:
            image = (image / 255.0 - self.mean) / self.std
        # Scripted detection models return (losses, detections); an if, not a conditional
        # expression, so TorchScript drops the eager branch (whose type differs).
        if torch.jit.is_scripting():  # noqa: SIM108
            detections = self.net([image])[1]
        else:
            detections = self.net([image])
        found = detections[0]
        classes = self.class_of_label[found["labels"]]
        return found["boxes"], classes, found["scores"], found["masks"]


def export_instance_model(
    task: Any, data: dict[str, Any], fmt: str, path: Path, normalize: bool, check: bool
) -> dict[str, Any]:
    """TorchScript of an instance task's network (ONNX: refused, torchvision's Mask R-CNN does
    not export with a dynamic image size); the parity check runs both on one image."""
    if fmt != "torchscript":
        raise ConfigError(
            f"format={fmt}: {task.hparams['model'].get('name')} (an instance model) exports to "
            "torchscript only; use format=torchscript"
        )
    model = ExportableDetector(
        task.net.float().eval(), task.class_of_label, data["mean"], data["std"], normalize
    ).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(model).save(str(path))
    info: dict[str, Any] = {
        "input": {
            "name": "image",
            "shape": [data.get("in_channels", 3), "height", "width"],
            "dtype": "float32",
            "expects": "one RGB image in 0..255, normalised inside the model"
            if normalize
            else "one image (image / 255 - mean) / std, channels first",
        },
        "output": {
            "boxes": ["n", 4],
            "classes": ["n"],
            "scores": ["n"],
            "masks": ["n", 1, "height", "width"],
        },
    }
    if check:
        info["max_abs_diff"] = check_instance_parity(model, path)
    return info


def check_instance_parity(model: ExportableDetector, path: Path) -> float:
    """The scripted file against the eager model on two random square images, one at the
    model's resize size and one half as large (scaled ×2): the same detections, matched one to
    one by class and box (their order may differ among tied scores), with boxes, scores and
    masks within the semantic export's tolerance. Sides whose resize scale is not exact in
    float32 are left out: torchvision's scripted transform computes that scale in float32
    (eager: float64), so such an image can come out one pixel smaller and detect differently."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.load(str(path), map_location="cpu")
    side = int(min(model.net.transform.min_size))
    generator = torch.Generator().manual_seed(1)
    worst = 0.0
    for size in (side, max(side // 2, 1)):
        image = torch.rand(3, size, size, generator=generator)
        image = image * 255 if model.normalize else (image - 0.5) / 0.25
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            worst = max(worst, _matched_difference(model(image), scripted(image), path))
    return worst


def _matched_difference(expected: Sequence[Tensor], got: Sequence[Tensor], path: Path) -> float:
    problem = f"the exported torchscript model at {path} does not reproduce the checkpoint"
    if len(got[0]) != len(expected[0]):
        raise SeglabError(f"{problem}: {len(got[0])} detections vs {len(expected[0])}")
    if not len(got[0]):
        return 0.0
    cost = (got[0][:, None] - expected[0][None]).abs().amax(-1)
    cost = cost + 1e9 * (got[1][:, None] != expected[1][None])
    rows, cols = linear_sum_assignment(cost.numpy())
    diff = max(
        float((g[rows] - e[cols]).abs().max())
        for g, e in zip(got, expected, strict=True)
        if g.is_floating_point()
    )
    scale = max(float(e.abs().max()) for e in expected if e.is_floating_point()) + 1.0
    if not torch.equal(got[1][rows], expected[1][cols]) or diff > PARITY_TOLERANCE * scale:
        raise SeglabError(f"{problem}: max |Δ| {diff:.3g} after matching the detections")
    return diff
