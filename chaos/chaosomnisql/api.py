"""HTTP calls to OmniSQL's admin, fault and stats API (the sandbox mirrors the control plane).

Through the lab's one sandbox client (:mod:`labcore.sandbox_client`): every URL is checked
against the allowlist first, the admin token is sent when the sandbox has one, and errors
name the status and the error code the API returned, never a request header (API keys
stay out of journals).
"""

from __future__ import annotations

from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration

from labcore.sandbox_client import SandboxClient, SandboxError

from .settings import endpoints

__all__ = ["admin_call", "stats"]

TIMEOUT_SECONDS = 60.0  # promotion and rebuild run pg tools: seconds, not milliseconds


def admin_call(
    method: str, path: str, configuration: Configuration, body: dict[str, Any] | None = None
) -> Any:
    """``method`` ``admin_url + path`` with a JSON body; the JSON answer, or ActivityFailed."""
    target = endpoints(configuration)
    client = SandboxClient(target["admin_url"], target.get("admin_token"), TIMEOUT_SECONDS)
    try:
        return client.call(method, path, body)
    except SandboxError as exc:
        raise ActivityFailed(str(exc)) from None


def stats(window: int, configuration: Configuration,
          slow_above: float | None = None) -> dict[str, Any]:
    """The gateway's stats over the last ``window`` seconds (``GET /v1/stats``); with
    ``slow_above`` (seconds) each scope also counts its requests slower than that (``slow``)."""
    query = f"window={int(window)}" + ("" if slow_above is None else f"&slow_above={slow_above!r}")
    data: dict[str, Any] = admin_call("GET", f"/v1/stats?{query}", configuration)
    return data
