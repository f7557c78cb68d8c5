"""Finding the images predict.py segments: a file, a folder or a glob.

Reading them is the data layer's job (`seglab.data.io.read_image`, the reader every dataset
uses), so training, eval.py and predict.py see a file alike; the suffixes come from there too."""

from __future__ import annotations

import glob
from collections.abc import Sequence
from pathlib import Path

from seglab.data.io import IMAGE_SUFFIXES
from seglab.errors import SeglabError

GLOB_CHARS = "*?["


def find_inputs(spec: str) -> list[tuple[Path, Path]]:
    """(image, path relative to the input's base) for a file, a folder (recursive) or a glob.

    The relative path mirrors subfolders into the output folder.
    """
    if any(c in spec for c in GLOB_CHARS):
        prefix = spec[: min(spec.index(c) for c in GLOB_CHARS if c in spec)]
        base = Path(prefix) if prefix.endswith(("/", "\\")) else Path(prefix).parent
        found = sorted(Path(p) for p in glob.glob(spec, recursive=True))
        pairs = [(p, p.relative_to(base)) for p in found if _is_image(p)]
    else:
        source = Path(spec)
        if source.is_file():
            pairs = [(source, Path(source.name))]
        elif source.is_dir():
            pairs = [(p, p.relative_to(source)) for p in sorted(source.rglob("*")) if _is_image(p)]
        else:
            raise SeglabError(f"input={spec!r}: no such file or folder (nor a glob pattern)")
    if not pairs:
        raise SeglabError(f"input={spec!r} holds no image ({', '.join(IMAGE_SUFFIXES)})")
    _check_unique_stems(pairs)
    return pairs


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def _check_unique_stems(pairs: Sequence[tuple[Path, Path]]) -> None:
    """`a.png` and `a.jpg` side by side would both write `a_mask.png`."""
    seen: dict[Path, Path] = {}
    for path, rel in pairs:
        key = rel.with_suffix("")
        if key in seen:
            raise SeglabError(
                f"{seen[key]} and {path} would both be written as {key}_mask.png; "
                "rename one or predict them separately"
            )
        seen[key] = path
