"""Train a segmentation model: `python train.py model=unet data=cityscapes data.root=/data/cs`."""

import os

import hydra

os.environ.setdefault("SEGLAB_ROOT", os.path.dirname(os.path.abspath(__file__)))
import seglab  # noqa: E402,F401 - registers the config resolvers before Hydra composes


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg):  # noqa: ANN001, ANN201
    from seglab.cli import freeze_imported_objects
    from seglab.cli.train import train  # torch and Lightning: not for --help or --cfg

    freeze_imported_objects()

    return train(cfg)


if __name__ == "__main__":
    main()
