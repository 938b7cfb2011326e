"""One detached sandbox per test session, in a fresh temp dir, always torn down."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.supervise import survivors

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str, timeout: float = 150.0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, check=False,
                          timeout=timeout, env=env, cwd=REPO)


class Sandbox:
    """Handles for tests: the state, an HTTP client and query helpers."""

    def __init__(self, root: Path, state: dict[str, Any]) -> None:
        self.root, self.state = root, state
        self.http = httpx.Client(timeout=30.0)

    @property
    def admin(self) -> str:
        return str(self.state["admin_url"])

    def headers(self, tenant: str, user: str = "u1") -> dict[str, str]:
        key = self.state["tenants"][tenant]["api_key"]
        return {"Authorization": f"Bearer {key}", "X-OmniSQL-User": user}

    def query(self, tenant: str, sql: str, user: str = "u1") -> httpx.Response:
        return self.http.post(f"{self.state['gateway_url']}/v1/query", json={"sql": sql},
                              headers=self.headers(tenant, user))

    def stats(self, window: int = 30) -> dict[str, Any]:
        resp = self.http.get(f"{self.admin}/v1/stats", params={"window": window})
        resp.raise_for_status()
        data: dict[str, Any] = resp.json()
        return data


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    root = Path(tempfile.mkdtemp(prefix="omnisql-sandbox-"))
    root.chmod(0o711)  # PostgreSQL runs as `postgres` and must traverse it
    box = root / "sb"
    try:
        up = run_cli("-m", "sandbox", "up", "--dir", str(box), "--detach")
        assert up.returncode == 0, up.stderr[-3000:]
        sb = Sandbox(box, json.loads((box / "state.json").read_text()))
        yield sb
        sb.http.close()
    finally:
        run_cli("-m", "sandbox", "down", "--dir", str(box), timeout=90)
        left = survivors(box)
        shutil.rmtree(root, ignore_errors=True)
        assert left == [], f"processes survived `down`: {left}"
