"""One detached sandbox per test session, in a fresh temp dir, always torn down."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.testing import detached_sandbox


class Sandbox:
    """Handles for tests: the state, an HTTP client and query helpers."""

    def __init__(self, root: Path, state: dict[str, Any]) -> None:
        self.root, self.state = root, state
        # The admin token on calls to the admin service only (gateway calls carry API keys).
        self.http = httpx.Client(timeout=30.0, event_hooks={"request": [self._admin_token]})

    def _admin_token(self, request: httpx.Request) -> None:
        if str(request.url).startswith(self.admin):
            request.headers.setdefault("Authorization", f"Bearer {self.state['admin_token']}")

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
    with detached_sandbox("omnisql-sandbox-") as box:
        sb = Sandbox(box, json.loads((box / "state.json").read_text()))
        yield sb
        sb.http.close()
