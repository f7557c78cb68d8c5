"""Write the versions installed in this environment as pip constraints (`make upgrade-deps`).

`pip freeze` (pip's own tool) of the project's environment, minus seglab itself and minus the
CUDA runtime wheels torch pins exactly by itself (nvidia-*, cuda-*, triton): a GPU node that
installs another CUDA build of the same torch version (e.g. from the PyTorch index) then
satisfies `torch==X` with its own runtime. `make train`/`make test` install with `-c` this file.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

# torch's own exact pins choose these; which of them exist depends on the CUDA build.
TORCH_RUNTIME = re.compile(r"^(nvidia-|cuda-|triton==)", re.IGNORECASE)
PROJECT = (
    "seglab=="  # itself: editable in .venv, but a stray seglab.egg-info on the path looks installed
)
HEADER = (
    "# The versions `make test` passed with (make upgrade-deps rewrites this file after a green\n"
    "# suite on the newest releases). make train / make test install with `-c constraints.txt`.\n"
    "# Without torch's CUDA runtime wheels, which torch pins itself (scripts/write_constraints.py).\n"
)


def frozen(python: str = sys.executable) -> list[str]:
    """`name==version` lines of `python`'s environment, seglab and torch's runtime left out."""
    out = subprocess.run(
        [python, "-m", "pip", "freeze", "--exclude-editable", "--disable-pip-version-check"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    lines = [line.strip() for line in out.splitlines() if "==" in line]
    kept = (ln for ln in lines if not TORCH_RUNTIME.match(ln) and not ln.startswith(PROJECT))
    return sorted(kept, key=str.lower)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("constraints.txt"))
    args = parser.parse_args()
    args.output.write_text(HEADER + "\n".join(frozen()) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
