"""Chaos tests: one detached sandbox per session (started only if a test needs it)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from chaos_helpers import ChaosSandbox, run_py


@pytest.fixture(scope="session")
def chaos_sandbox() -> Iterator[ChaosSandbox]:
    root = Path(tempfile.mkdtemp(prefix="omnisql-chaos-"))
    root.chmod(0o711)  # PostgreSQL runs as `postgres` and must traverse it
    box = root / "sb"
    try:
        up = run_py("-m", "sandbox", "up", "--dir", str(box), "--detach")
        assert up.returncode == 0, up.stderr[-3000:]
        yield ChaosSandbox(box)
    finally:
        run_py("-m", "sandbox", "down", "--dir", str(box), timeout=90)
        shutil.rmtree(root, ignore_errors=True)
