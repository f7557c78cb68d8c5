"""predict.py's outputs for an instance checkpoint (Mask R-CNN), per image at its own size:

- `<stem>_instances.json`: COCO's results format, one entry per instance scoring at least
  `score_thresh`: `category_id` (the dataset's class id) and `category_name`, `score`, `bbox`
  [x, y, width, height] and `segmentation` (the mask, probability > model.mask_threshold, as
  COCO RLE via pycocotools, `counts` as text);
- `<stem>_overlay.png`: each instance in its own colour, boxed and captioned "class score";
- `<stem>_mask.png`: the class map those instances paint (the highest score winning where
  they overlap, uncovered pixels the data's background class), as the semantic metrics use it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from torch import Tensor

from seglab.tasks.base import SegmentationTask
from seglab.tasks.instance import paste_instances
from seglab.visualize import draw_instances, palette_array


def coco_results(
    found: dict[str, Tensor], names: list[str], threshold: float, image_id: str
) -> list[dict[str, Any]]:
    """COCO results entries of the detections (already filtered by score)."""
    results = []
    for box, cls, score, mask in zip(
        found["boxes"].tolist(), found["classes"].tolist(), found["scores"].tolist(),
        found["masks"], strict=True,
    ):  # fmt: skip
        binary = np.asfortranarray((mask > threshold).numpy().astype(np.uint8))
        rle = mask_utils.encode(binary)
        rle["counts"] = rle["counts"].decode("ascii")
        x0, y0, x1, y1 = box
        results.append(
            {
                "image_id": image_id,
                "category_id": int(cls),
                "category_name": names[int(cls)],
                "score": round(float(score), 5),
                "bbox": [round(v, 2) for v in (x0, y0, x1 - x0, y1 - y0)],
                "segmentation": rle,
            }
        )
    return results


def write_instance_outputs(
    task: SegmentationTask,
    data: dict[str, Any],
    stem: Path,
    image: np.ndarray,
    found: dict[str, Tensor],
    score_thresh: float,
    alpha: float,
) -> np.ndarray:
    """The three files of one image; returns the painted class map."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    keep = found["scores"] >= score_thresh
    found = {k: v[keep] for k, v in found.items()}
    names = list(data["class_names"])
    threshold = float(task.hparams["model"].get("mask_threshold", 0.5))
    results = coco_results(found, names, threshold, stem.name)
    (stem.parent / f"{stem.name}_instances.json").write_text(json.dumps(results, indent=1))
    rgb = image if image.shape[-1] == 3 else np.repeat(image[..., :1], 3, axis=-1)
    captions = [f"{r['category_name']} {r['score']:.2f}" for r in results]
    binary = (found["masks"] > threshold).numpy()
    Image.fromarray(draw_instances(rgb, binary, captions, alpha)).save(
        stem.parent / f"{stem.name}_overlay.png"
    )
    background = (data.get("instance") or {}).get("background_class")
    fill = int(background) if background is not None else int(data["ignore_index"])
    identity = torch.arange(len(names), dtype=torch.long)
    prediction = {
        "scores": found["scores"],
        "labels": found["classes"],
        "masks": found["masks"][:, None],
    }
    class_map = paste_instances(prediction, identity, image.shape[:2], fill, threshold)
    mask = class_map.to(torch.uint8).numpy()
    mask_image = Image.fromarray(mask, mode="P")
    mask_image.putpalette(palette_array(data["palette"], data["ignore_index"]).reshape(-1).tolist())
    mask_image.save(stem.parent / f"{stem.name}_mask.png")
    return mask
