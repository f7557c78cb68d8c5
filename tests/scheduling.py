"""Longest first: how the suite's work is shared out among pytest-xdist workers.

`make test` runs `-n auto --dist loadscope --no-loadscope-reorder` with the scheduler below:
xdist's loadscope, which hands out work units in the order they are collected, the next one to
whichever worker is free. A unit is a whole module (its tests share a worker, so a
module-scoped run is made once), or a single test in the modules of SPREAD (independent tests,
no costly module fixture). The workers collect the units longest first (the LPT rule), so the
last units to start are short ones and no worker idles at the end while another finishes a
long module.

How long a unit takes is read from tests/durations.json under the rootdir (seconds per test,
setup + call + teardown), written by `make test PYTEST_ARGS=--store-durations`. A test missing
from it counts as DEFAULT_SECONDS. Out-of-date figures only cost speed: which tests run, and
how, is the same.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest
from xdist.scheduler import LoadScopeScheduling

DURATIONS = Path("tests") / "durations.json"  # under the rootdir
DEFAULT_SECONDS = 1.0
# Modules whose tests are shared out one by one: long, independent end-to-end cases.
SPREAD = frozenset(
    f"tests/{name}.py"
    for name in (
        "test_architectures_e2e",
        "test_torchvision_models",
        "test_ddp",
        "test_search",
        "test_sweeps",
        "test_robustness",
        "test_datasets_train",
        "test_cli_errors",
    )
)


def unit_of(nodeid: str, spread: frozenset[str] = SPREAD) -> str:
    """The work unit a test belongs to: its module, or itself when its module is spread."""
    module = nodeid.split("::", 1)[0]
    return nodeid if module in spread else module


def longest_first(
    nodeids: Iterable[str], seconds: Mapping[str, float], spread: frozenset[str] = SPREAD
) -> list[str]:
    """`nodeids` (in collection order) reordered unit by unit, the longest unit first; the
    tests of a unit stay together and in their order."""
    members: dict[str, list[str]] = defaultdict(list)
    for nodeid in nodeids:
        members[unit_of(nodeid, spread)].append(nodeid)
    cost = {
        unit: sum(seconds.get(n, DEFAULT_SECONDS) for n in ids) for unit, ids in members.items()
    }
    ordered = sorted(members, key=lambda unit: -cost[unit])  # stable: ties keep collection order
    return [nodeid for unit in ordered for nodeid in members[unit]]


def read_durations(path: Path) -> dict[str, float]:
    """Seconds per test id from the last `--store-durations` run ({} when there is none)."""
    return json.loads(path.read_text()) if path.is_file() else {}


class LongestFirstScheduling(LoadScopeScheduling):
    """loadscope, with SPREAD's tests as units of their own."""

    def _split_scope(self, nodeid: str) -> str:
        return unit_of(nodeid)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--store-durations",
        action="store_true",
        help=f"write each test's seconds to {DURATIONS} (the order of `make test`)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> LoadScopeScheduling | None:
    """`--dist loadscope`: seglab's units (None: xdist's own scheduler for the other modes)."""
    if config.getoption("dist") == "loadscope":
        return LongestFirstScheduling(config, log)
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In an xdist worker: the longest unit first (the order the scheduler hands them out)."""
    if not hasattr(config, "workerinput"):
        return  # one process: the tests in the order they are written
    seconds = read_durations(config.rootpath / DURATIONS)
    position = {n: i for i, n in enumerate(longest_first([i.nodeid for i in items], seconds))}
    items.sort(key=lambda item: position[item.nodeid])


class DurationRecorder:
    """Adds up each test's phases as the reports arrive (in the controller under xdist)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seconds: dict[str, float] = defaultdict(float)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.seconds[report.nodeid] += report.duration

    def pytest_sessionfinish(self) -> None:
        # Merged into the figures already there: a run of a few modules updates just those.
        merged = read_durations(self.path) | {k: round(v, 2) for k, v in self.seconds.items()}
        self.path.write_text(json.dumps(dict(sorted(merged.items())), indent=0) + "\n")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("store_durations") and not hasattr(config, "workerinput"):
        recorder = DurationRecorder(config.rootpath / DURATIONS)
        config.pluginmanager.register(recorder, "seglab-durations")
