"""Tags that say where a run came from: code version, command line, overrides, output dir."""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import seglab


def _git(args: Sequence[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def provenance_tags(
    project_root: Path, overrides: Sequence[str], output_dir: Path
) -> dict[str, str]:
    """MLflow tags for a run; git tags are left out outside a git checkout."""
    tags = {
        "seglab.version": seglab.__version__,
        "seglab.command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "seglab.overrides": " ".join(overrides) or "(none)",
        "seglab.output_dir": str(output_dir),
    }
    commit = _git(["rev-parse", "HEAD"], project_root)
    if commit:
        tags["mlflow.source.git.commit"] = commit
        status = _git(["status", "--porcelain", "--untracked-files=no"], project_root)
        tags["seglab.git.dirty"] = str(bool(status)).lower()
    return tags
