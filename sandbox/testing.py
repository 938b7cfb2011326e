"""A detached sandbox for test sessions: started in a fresh temporary directory, always
taken down and removed, and checked to leave no process behind.

Used by the session fixtures of ``tests/sandbox``, ``tests/chaos`` and ``tests/loadtests``;
usable from any test suite that needs a real stand-in::

    with detached_sandbox("omnisql-mytests-") as box:
        state = json.loads((box / "state.json").read_text())
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sandbox.supervise import survivors

__all__ = ["REPO", "detached_sandbox", "wait_for"]

#: The checkout the sandbox package lives in (its processes run from there).
REPO = Path(__file__).resolve().parents[1]


@contextmanager
def detached_sandbox(prefix: str, env: dict[str, str] | None = None,
                     up_timeout: float = 150.0, up_args: tuple[str, ...] = ()) -> Iterator[Path]:
    """``python -m sandbox up --detach`` in a new temporary directory; yields the sandbox
    directory (its ``state.json`` holds the URLs and keys). On exit, whatever happened:
    ``down``, the directory removed, and an AssertionError if a process survived.

    ``env`` is the environment of the ``up``/``down`` commands (default: this process's),
    with ``PYTHONPATH`` pointing at the checkout; ``up_args`` are more ``up`` arguments
    (``--no-prometheus``, ``--scenario FILE``...)."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o711)  # PostgreSQL runs as `postgres` and must traverse it
    box = root / "sb"
    child_env = {**(os.environ if env is None else env), "PYTHONPATH": str(REPO)}

    def cli(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "sandbox", *args, "--dir", str(box)],
                              capture_output=True, text=True, check=False, timeout=timeout,
                              env=child_env, cwd=REPO)

    try:
        up = cli("up", "--detach", *up_args, timeout=up_timeout)
        assert up.returncode == 0, up.stderr[-3000:]
        yield box
    finally:
        cli("down", timeout=90)
        left = survivors(box)
        shutil.rmtree(root, ignore_errors=True)
        assert left == [], f"processes survived `sandbox down`: {left}"


def wait_for(predicate: Callable[[], bool], timeout: float, step: float = 0.2) -> bool:
    """Poll ``predicate`` every ``step`` seconds until it is true (True) or ``timeout``
    seconds have passed (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False
