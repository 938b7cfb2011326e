"""The suite's own sharing-out between pytest-xdist workers (``tests/conftest.py``).

If the groups were not applied (the conftest's hook running after xdist's, which reads the
marks into node ids), each test would go to any worker, and every worker would start its
own copy of each stand-in: the suite slower, and twice the stand-ins at once.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# By path: `import conftest` finds whichever conftest.py was imported last under that name.
_spec = importlib.util.spec_from_file_location("suite_conftest", REPO / "tests" / "conftest.py")
assert _spec is not None and _spec.loader is not None
suite = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(suite)


def test_a_module_runs_whole_on_one_worker() -> None:
    pytest.importorskip("xdist")
    module = "tests/sandbox/test_port_claim.py"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v",
         "-p", "no:cacheprovider", module],
        capture_output=True, text=True, cwd=REPO, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    passed = re.findall(r"\[(gw\d+)\] \[ *\d+%\] PASSED (\S+)", proc.stdout)
    assert len(passed) == 3, proc.stdout[-3000:]
    assert all(nodeid.endswith(f"@{module}") for _, nodeid in passed), passed
    assert len({worker for worker, _ in passed}) == 1, passed


class _Item:
    def __init__(self, nodeid: str, fixturenames: list[str]) -> None:
        self.nodeid, self.fixturenames = nodeid, fixturenames


def test_the_tests_of_a_session_stand_in_share_its_group() -> None:
    a = _Item("tests/chaos/test_chaos_e2e.py::test_x", ["chaos_sandbox", "tmp_path"])
    b = _Item("tests/chaos/test_chaos_resets.py::test_y", ["chaos_sandbox"])
    c = _Item("tests/chaos/test_chaos_units.py::test_z", ["tmp_path"])
    assert suite.xdist_group_of(a) == suite.xdist_group_of(b) == "chaos_sandbox"
    assert suite.xdist_group_of(c) == "tests/chaos/test_chaos_units.py"
    assert "standin" in suite.SHARED_FIXTURES and "sandbox" in suite.SHARED_FIXTURES
