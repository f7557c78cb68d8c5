"""Train a segmentation model: `python train.py model=unet data=cityscapes data.root=/data/cs`."""

import os

import hydra

os.environ.setdefault("SEGLAB_ROOT", os.path.dirname(os.path.abspath(__file__)))
from seglab.cli.train import train  # noqa: E402


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg):  # noqa: ANN001, ANN201
    return train(cfg)


if __name__ == "__main__":
    main()
