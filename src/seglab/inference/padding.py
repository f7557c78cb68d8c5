"""Padding an image to the encoder's output stride: one rule for the task and the exported model.

smp encoders downsample by up to 2**5, so both sides must be multiples of 32. The task's
forward (training, validation, eval, predict) and the exported graph (export.py) pad with this
one function, so a model gives the same logits inside and outside seglab, whatever the size.

The rule (the task's since the start, so scores do not move): pad bottom and right by
reflecting the image. Reflection needs every pad shorter than its side, so an image too thin
for it (a side of 16 px or less, where the pad to 32 reaches past it) is padded by
replicating its edges instead, on both axes. The choice is made with index tensors rather than
a Python branch on the size: TorchScript scripts it, and ONNX's dynamo exporter keeps both
cases in the graph (it freezes a Python branch on the size at the example's, which made the
exported model fail on thin images).
"""

from __future__ import annotations

import torch
from torch import Tensor

OUTPUT_STRIDE = 32  # smp encoders downsample by up to 2**5


def pad_to_stride(image: Tensor, stride: int = OUTPUT_STRIDE) -> Tensor:
    """`image` (…×H×W) padded bottom and right to multiples of `stride`: reflect, or replicate
    when a pad would reach past its side (see the module docstring). Crop the output back with
    `[..., :H, :W]`."""
    height, width = image.shape[-2], image.shape[-1]
    device = image.device
    extra_rows = torch.arange(height, height + (stride - height % stride) % stride, device=device)
    extra_cols = torch.arange(width, width + (stride - width % stride) % stride, device=device)
    # Reflecting, padded row i ≥ H repeats row 2·(H-1) - i (as F.pad's "reflect"); that index
    # goes negative exactly when the pad is not shorter than the side.
    mirrored_rows = 2 * (height - 1) - extra_rows
    mirrored_cols = 2 * (width - 1) - extra_cols
    reflect = (mirrored_rows >= 0).all() & (mirrored_cols >= 0).all()
    rows = torch.where(reflect, mirrored_rows, extra_rows.clamp(max=height - 1))
    cols = torch.where(reflect, mirrored_cols, extra_cols.clamp(max=width - 1))
    # Only the padding is gathered (index_select over a whole image's columns is slow on CPU).
    image = torch.cat([image, image.index_select(-2, rows)], dim=-2)
    return torch.cat([image, image.index_select(-1, cols)], dim=-1)
