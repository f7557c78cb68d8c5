"""Score a checkpoint: `python eval.py ckpt_path=runs/train/.../checkpoints/best.ckpt split=val`."""

import os

import hydra

os.environ.setdefault("SEGLAB_ROOT", os.path.dirname(os.path.abspath(__file__)))
from seglab.cli.evaluate import evaluate  # noqa: E402


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def main(cfg):  # noqa: ANN001, ANN201
    evaluate(cfg)


if __name__ == "__main__":
    main()
