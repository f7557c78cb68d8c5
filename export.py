"""Export a checkpoint: `python export.py ckpt_path=best.ckpt format=onnx|torchscript`."""

import os

import hydra

os.environ.setdefault("SEGLAB_ROOT", os.path.dirname(os.path.abspath(__file__)))
import seglab  # noqa: E402,F401 - registers the config resolvers before Hydra composes


@hydra.main(version_base="1.3", config_path="conf", config_name="export")
def main(cfg):  # noqa: ANN001, ANN201
    from seglab.cli import freeze_imported_objects
    from seglab.cli.export import export  # torch and Lightning: not for --help or --cfg

    freeze_imported_objects()

    export(cfg)


if __name__ == "__main__":
    main()
