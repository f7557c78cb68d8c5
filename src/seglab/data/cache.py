"""Caches seglab builds from a dataset on first use, each entry validated before reuse.

An entry is a folder of files plus a `manifest.json` that records what it was built from
(source files with size and modification time, the build parameters, a format version). An
entry whose manifest does not match the sources any more is rebuilt, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"


def cache_dir_for(cache_dir: str | Path, dataset: str, root: str | Path) -> Path:
    """`<cache_dir>/<dataset>-<hash of the resolved root>`: two roots never share a cache."""
    key = hashlib.sha1(str(Path(root).expanduser().resolve()).encode()).hexdigest()[:10]
    return Path(cache_dir).expanduser() / f"{dataset}-{key}"


def fingerprint(paths: list[Path], params: dict[str, Any]) -> dict[str, Any]:
    """What an entry depends on: each source's name, size and mtime, and the build params."""
    sources = {}
    for p in paths:
        st = p.stat()
        sources[str(p.resolve())] = [st.st_size, st.st_mtime_ns]
    return {"sources": sources, "params": params}


def read_manifest(
    entry: Path, expected: dict[str, Any], name: str = MANIFEST
) -> dict[str, Any] | None:
    """The entry's manifest (`name`) if it was built from exactly `expected`, else None
    (stale/absent)."""
    path = entry / name
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("fingerprint") != json.loads(json.dumps(expected)):
        return None
    return manifest


def write_manifest(
    entry: Path, expected: dict[str, Any], name: str = MANIFEST, **info: Any
) -> None:
    """Write the manifest (`name`) last and atomically: a half-built entry never looks valid."""
    entry.mkdir(parents=True, exist_ok=True)
    tmp = entry / f".{name}.{os.getpid()}"
    tmp.write_text(json.dumps({"fingerprint": expected, **info}, indent=1))
    tmp.replace(entry / name)


def announce(message: str) -> None:
    """Cache building is slow: say what is happening on the console (stderr)."""
    print(f"[seglab] {message}", file=sys.stderr, flush=True)
