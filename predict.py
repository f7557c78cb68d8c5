"""Segment images: `python predict.py ckpt_path=best.ckpt input=photos/ output=out/`."""

import os

import hydra

os.environ.setdefault("SEGLAB_ROOT", os.path.dirname(os.path.abspath(__file__)))
from seglab.cli.predict import predict  # noqa: E402


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
def main(cfg):  # noqa: ANN001, ANN201
    predict(cfg)


if __name__ == "__main__":
    main()
