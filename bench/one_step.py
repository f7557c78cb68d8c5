"""The start-up baseline: import torch, Lightning and smp, build the default model, run one step.

What any training script pays before its first step (imports, model construction, one forward
and backward) and nothing of the platform: `startup_ratio` divides the wall time of the smallest
complete `train.py` run (one train + one val batch) by this script's.
"""

import pytorch_lightning  # noqa: F401  - a Lightning script imports it, so the baseline does
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F


def main() -> None:
    torch.manual_seed(0)
    model = smp.Unet("resnet18", encoder_weights=None, classes=6)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    image, mask = torch.randn(16, 3, 64, 64), torch.randint(0, 6, (16, 64, 64))
    loss = F.cross_entropy(model(image), mask)
    loss.backward()
    optimizer.step()


if __name__ == "__main__":
    main()
