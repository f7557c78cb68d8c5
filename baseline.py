"""Score a non-learned baseline: `python baseline.py method=otsu|kmeans|majority data=<name>`."""

import os

import hydra

os.environ.setdefault("SEGLAB_ROOT", os.path.dirname(os.path.abspath(__file__)))
from seglab.cli.baseline import baseline  # noqa: E402


@hydra.main(version_base="1.3", config_path="conf", config_name="baseline")
def main(cfg):  # noqa: ANN001, ANN201
    baseline(cfg)


if __name__ == "__main__":
    main()
