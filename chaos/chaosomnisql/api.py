"""HTTP calls to OmniSQL's admin, fault and stats API (the sandbox mirrors the control plane).

Every URL is checked against the allowlist first; errors name the status and the error
code the API returned, never a request header (API keys stay out of journals).
"""

from __future__ import annotations

from typing import Any

import httpx
from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration

from .settings import endpoints

__all__ = ["admin_call", "stats"]

TIMEOUT_SECONDS = 60.0  # promotion and rebuild run pg tools: seconds, not milliseconds


def admin_call(
    method: str, path: str, configuration: Configuration, body: dict[str, Any] | None = None
) -> Any:
    """``method`` ``admin_url + path`` with a JSON body; the JSON answer, or ActivityFailed."""
    target = endpoints(configuration)
    url = target["admin_url"].rstrip("/") + path
    token = target.get("admin_token")
    headers = {"Authorization": f"Bearer {token}"} if token else None
    try:
        resp = httpx.request(method, url, json=body, timeout=TIMEOUT_SECONDS, headers=headers)
    except httpx.HTTPError as exc:
        raise ActivityFailed(f"{method} {path}: {type(exc).__name__}") from None
    if resp.status_code >= 400:
        raise ActivityFailed(f"{method} {path}: HTTP {resp.status_code} {_code(resp)}")
    return resp.json()


def stats(window: int, configuration: Configuration) -> dict[str, Any]:
    """The gateway's stats over the last ``window`` seconds (``GET /v1/stats``)."""
    data: dict[str, Any] = admin_call("GET", f"/v1/stats?window={int(window)}", configuration)
    return data


def _code(resp: httpx.Response) -> str:
    try:
        return str(resp.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return ""
