"""Chaos tests: one detached sandbox per session (started only if a test needs it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from chaos_helpers import ChaosSandbox

from sandbox.testing import detached_sandbox


@pytest.fixture(scope="session")
def chaos_sandbox() -> Iterator[ChaosSandbox]:
    with detached_sandbox("omnisql-chaos-") as box:
        yield ChaosSandbox(box)
