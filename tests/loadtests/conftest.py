"""Helpers to run Locust as a subprocess (never imported here: it monkey-patches sockets)
and one detached sandbox per test session for the end-to-end runs, always torn down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.testing import detached_sandbox

REPO = Path(__file__).resolve().parents[2]
LOCUSTFILE = REPO / "loadtests" / "locustfile.py"


def locust_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
            "--only-summary", "--loglevel", "WARNING", *args]


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNISQL_API_KEY_")}
    return {**env, "PYTHONPATH": str(REPO), **extra}


def run_locust(*args: str, timeout: float = 120.0, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(locust_command(*args), capture_output=True, text=True, check=False,
                          timeout=timeout, cwd=REPO, env=child_env(**env))


class Standin:
    """A running sandbox: its directory and state (holds API keys: never print it)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state: dict[str, Any] = json.loads((root / "state.json").read_text())

    def get(self, path: str) -> Any:
        import httpx

        resp = httpx.get(self.state["admin_url"] + path, timeout=10.0,
                         headers={"Authorization": f"Bearer {self.state['admin_token']}"})
        resp.raise_for_status()
        return resp.json()


@pytest.fixture(scope="session")
def standin() -> Iterator[Standin]:
    with detached_sandbox("omnisql-lt-", env=child_env(), up_timeout=180) as box:
        yield Standin(box)
