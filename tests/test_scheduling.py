"""The suite's own scheduling (tests/scheduling.py): longest work unit first, modules kept whole
unless spread, and the figures it orders by recorded by `--store-durations`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT
from tests.scheduling import SPREAD, longest_first, unit_of


def test_longest_unit_first_and_a_modules_tests_stay_together_in_order() -> None:
    collected = ["t/test_a.py::one", "t/test_b.py::slow", "t/test_a.py::two",
                 "t/test_b.py::fast", "t/test_b.py::new"]  # fmt: skip
    seconds = {"t/test_a.py::one": 3, "t/test_a.py::two": 4, "t/test_b.py::slow": 5,
               "t/test_b.py::fast": 0.5}  # fmt: skip  # t/test_b.py::new: DEFAULT_SECONDS
    assert longest_first(collected, seconds, spread=frozenset({"t/test_b.py"})) == [
        "t/test_a.py::one", "t/test_a.py::two",  # 7 s together, more than the 5 s test alone
        "t/test_b.py::slow", "t/test_b.py::new", "t/test_b.py::fast",
    ]  # fmt: skip


def test_units() -> None:
    assert unit_of("tests/test_a.py::test_x[1]") == "tests/test_a.py"
    spread = next(iter(SPREAD))
    assert unit_of(f"{spread}::test_x[1]") == f"{spread}::test_x[1]"


def _tiny_project(folder: Path) -> Path:
    """Two test modules: test_a kept whole, test_sweeps (a module of SPREAD) spread, with
    recorded figures."""
    (folder / "tests").mkdir()
    (folder / "tests" / "conftest.py").write_text('pytest_plugins = ["tests.scheduling"]\n')
    (folder / "tests" / "test_a.py").write_text("def test_one(): pass\ndef test_two(): pass\n")
    (folder / "tests" / "test_sweeps.py").write_text(
        "".join(f"def test_{name}(): pass\n" for name in ("fast", "mid", "slow"))
    )
    durations = folder / "tests" / "durations.json"
    durations.write_text(json.dumps({
        "tests/test_a.py::test_one": 2, "tests/test_a.py::test_two": 2,
        "tests/test_sweeps.py::test_slow": 9, "tests/test_sweeps.py::test_mid": 3,
        "tests/test_sweeps.py::test_fast": 0.1,
    }))  # fmt: skip
    return durations


def _run_xdist(project: Path, workers: int, *args: str) -> list[tuple[str, str]]:
    """(worker, test id) of each passed test, in the order they were reported, as `make test`
    runs the suite; the plugin comes from this checkout, the tests from `project`."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", str(workers), "--dist", "loadscope",
         "--no-loadscope-reorder", "-v", "-p", "no:cacheprovider", *args,
         "--rootdir", str(project), str(project / "tests")],
        cwd=project, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line.split() for line in result.stdout.splitlines() if " PASSED " in line]
    return [(words[0], words[-1]) for words in lines]


def test_units_are_handed_out_longest_first_and_the_figures_are_recorded(
    tmp_path: Path,
) -> None:
    """One worker: the order it runs the tests in is the order the units were handed out."""
    durations = _tiny_project(tmp_path)
    ran = [test for _, test in _run_xdist(tmp_path, 1, "--store-durations")]
    assert ran == [
        "tests/test_sweeps.py::test_slow",
        "tests/test_a.py::test_one", "tests/test_a.py::test_two",  # one unit: 4 s, before 3 s
        "tests/test_sweeps.py::test_mid", "tests/test_sweeps.py::test_fast",
    ]  # fmt: skip
    recorded = json.loads(durations.read_text())
    assert set(recorded) == set(ran)
    assert (
        recorded["tests/test_sweeps.py::test_slow"] < 9
    )  # this run's figures replaced the old ones


def test_a_module_not_spread_runs_in_one_worker(tmp_path: Path) -> None:
    _tiny_project(tmp_path)
    worker = {test: node for node, test in _run_xdist(tmp_path, 2)}
    assert worker["tests/test_a.py::test_one"] == worker["tests/test_a.py::test_two"]
