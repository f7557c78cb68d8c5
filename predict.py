"""Segment images: `python predict.py ckpt_path=best.ckpt input=photos/ output=out/`."""

import os

import hydra

os.environ.setdefault("SEGLAB_ROOT", os.path.dirname(os.path.abspath(__file__)))
import seglab  # noqa: E402,F401 - registers the config resolvers before Hydra composes


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
def main(cfg):  # noqa: ANN001, ANN201
    from seglab.cli import freeze_imported_objects
    from seglab.cli.predict import predict  # torch and Lightning: not for --help or --cfg

    freeze_imported_objects()

    predict(cfg)


if __name__ == "__main__":
    main()
