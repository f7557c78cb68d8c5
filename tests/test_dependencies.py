"""The lock: constraints.txt holds exactly the versions installed here, so a green suite is a
statement about those versions (make test installs from it; make upgrade-deps rewrites it)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

LOCK = ROOT / "constraints.txt"


def _pins(text: str) -> dict[str, str]:
    pins = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_lock_pins_every_direct_dependency() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    direct = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    names = {re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0].lower().replace("_", "-") for d in direct}
    pins = _pins(LOCK.read_text())
    assert names <= set(pins), sorted(names - set(pins))


def test_lock_matches_the_installed_environment(tmp_path: Path) -> None:
    """What scripts/write_constraints.py (make upgrade-deps) writes for this environment is the
    committed lock: installed from it, or rewritten after installing something new."""
    out = tmp_path / "constraints.txt"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "write_constraints.py"), "--output", str(out)],
        check=True,
        capture_output=True,
    )
    written, committed = _pins(out.read_text()), _pins(LOCK.read_text())
    differ = {k: (committed.get(k), written.get(k)) for k in {*written, *committed}
              if written.get(k) != committed.get(k)}  # fmt: skip
    assert not differ, f"installed vs constraints.txt (lock, installed): {differ}"
    assert not any(k.startswith(("nvidia-", "triton")) for k in written)  # torch pins them
