"""Score a checkpoint: `python eval.py ckpt_path=runs/train/.../checkpoints/best.ckpt split=val`."""

import os

import hydra

os.environ.setdefault("SEGLAB_ROOT", os.path.dirname(os.path.abspath(__file__)))
import seglab  # noqa: E402,F401 - registers the config resolvers before Hydra composes


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def main(cfg):  # noqa: ANN001, ANN201
    from seglab.cli import freeze_imported_objects
    from seglab.cli.evaluate import evaluate  # torch and Lightning: not for --help or --cfg

    freeze_imported_objects()

    evaluate(cfg)


if __name__ == "__main__":
    main()
