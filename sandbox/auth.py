"""Who may call what: the admin token, the internal token, and the gateway's two listeners.

Three secrets are generated at `up` and kept in the sandbox's state (mode 0600):
- `admin_token` (in `state.json`, for people and tools): `Authorization: Bearer <token>` on
  the admin service's `/admin/*` and `/faults*` routes;
- `internal.service_token`: `X-OmniSQL-Internal: <token>` on service-to-service calls (gateway
  → engine, engine → connector, admin → gateway internals, engine and provider `_control`);
- `internal.redis_password` and `internal.pg_password` for the stores, and
  `internal.token_key`, which seals the OAuth tokens kept in Redis (`sandbox.tokens`).

The guards are plain ASGI middleware, so the hot path pays one header comparison, and a
refused call gets the one error shape (`401 UNAUTHORIZED`) without reaching any route.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from sandbox.errors import ApiError, error_response

__all__ = ["INTERNAL_HEADER", "OPEN_PATHS", "TokenGuard", "admin_headers", "internal_headers"]

INTERNAL_HEADER = "X-OmniSQL-Internal"
#: Read-only, secret-free routes every service keeps open (probes, Prometheus scrapes).
OPEN_PATHS = frozenset({"/health", "/metrics"})

Scope = dict[str, Any]
Asgi = Callable[..., Any]


def admin_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def internal_headers(token: str) -> dict[str, str]:
    return {INTERNAL_HEADER: token}


def _header(scope: Scope, name: bytes) -> bytes:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return b""


class TokenGuard:
    """Refuse (401) HTTP requests whose path `protects` selects unless they carry one of
    `accepted`: a Bearer token in Authorization, or the internal token in its header."""

    def __init__(self, app: Asgi, protects: Callable[[str], bool], *,
                 bearer: str | None = None, internal: str | None = None,
                 hidden: Callable[[Scope], bool] | None = None) -> None:
        self.app, self.protects, self.hidden = app, protects, hidden
        self.bearer = f"Bearer {bearer}".encode() if bearer else None
        self.internal = internal.encode() if internal else None

    def allowed(self, scope: Scope) -> bool:
        if self.bearer and hmac.compare_digest(_header(scope, b"authorization"), self.bearer):
            return True
        got = _header(scope, INTERNAL_HEADER.lower().encode())
        return bool(self.internal) and hmac.compare_digest(got, self.internal or b"")

    async def __call__(self, scope: Scope, receive: Asgi, send: Asgi) -> None:
        if scope["type"] == "http":
            if self.hidden is not None and self.hidden(scope):
                err = ApiError(404, "NOT_FOUND", "no such route on this listener")
                return await error_response(err)(scope, receive, send)
            if self.protects(scope["path"]) and not self.allowed(scope):
                err = ApiError(401, "UNAUTHORIZED", "missing or invalid credentials")
                return await error_response(err)(scope, receive, send)
        await self.app(scope, receive, send)
