"""Where the load may go: the target host, its allowlist and the tenants' API keys.

A load test is a weapon pointed at a system, so the target is explicit and checked:

* the default host is the sandbox's ``gateway_url`` from its state file
  (``--sandbox-dir``, else ``$OMNISQL_SANDBOX_DIR``, else ``./.sandbox``);
* any host not on the allowlist (loopback names, plus ``$OMNISQL_LOADTEST_ALLOWED_HOSTS``
  and ``--allow-host``) is refused;
* API keys come from ``$OMNISQL_API_KEY_<TENANT>`` or the state file, never from a
  committed file, and are never printed (:class:`Target`'s ``repr`` hides them).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "LOOPBACK_HOSTS",
    "Target",
    "TargetError",
    "allowed_hosts",
    "check_host",
    "read_state",
    "resolve_target",
    "sandbox_dir",
]

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
ALLOW_ENV = "OMNISQL_LOADTEST_ALLOWED_HOSTS"
KEY_ENV_PREFIX = "OMNISQL_API_KEY_"


class TargetError(Exception):
    """The load cannot be aimed: unknown or refused host, missing keys or state file."""


@dataclass(frozen=True)
class Target:
    """A checked target: base URL, admin URL (sandbox only) and one API key per tenant."""

    host: str
    admin_url: str | None
    api_keys: Mapping[str, str] = field(repr=False)
    admin_token: str | None = field(default=None, repr=False)  # the sandbox's, with admin_url

    def __repr__(self) -> str:
        return f"Target(host={self.host!r}, admin_url={self.admin_url!r}, tenants={sorted(self.api_keys)})"


def sandbox_dir(explicit: str | None = None, environ: Mapping[str, str] = os.environ) -> Path:
    """The sandbox directory, with the same precedence as ``python -m sandbox``."""
    return Path(explicit or environ.get("OMNISQL_SANDBOX_DIR") or ".sandbox")


def read_state(directory: Path) -> dict[str, Any] | None:
    """The sandbox's ``state.json``, or None when no sandbox is up there."""
    path = directory / "state.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise TargetError(f"{path}: cannot read the sandbox state file: {exc}") from None
    if not isinstance(data, dict):
        raise TargetError(f"{path}: not a sandbox state file")
    return data


def allowed_hosts(extra: Iterable[str] = (), environ: Mapping[str, str] = os.environ) -> frozenset[str]:
    """Loopback, plus hosts from ``$OMNISQL_LOADTEST_ALLOWED_HOSTS`` and ``--allow-host``."""
    from_env = [h.strip().lower() for h in environ.get(ALLOW_ENV, "").split(",") if h.strip()]
    return LOOPBACK_HOSTS | {h.lower() for h in extra} | set(from_env)


def check_host(url: str, allowed: frozenset[str]) -> str:
    """Return ``url`` without a trailing slash if its host is allowed; raise otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetError(f"host {url!r} must be an http(s) URL, e.g. http://127.0.0.1:8080")
    if parts.hostname.lower() not in allowed:
        raise TargetError(
            f"host {parts.hostname!r} is not on the allowlist ({', '.join(sorted(allowed))}); "
            f"add it with --allow-host {parts.hostname} or ${ALLOW_ENV} if you mean it"
        )
    return url.rstrip("/")


def _api_keys(
    tenants: Iterable[str], state: Mapping[str, Any] | None, environ: Mapping[str, str]
) -> dict[str, str]:
    keys: dict[str, str] = {}
    from_state = (state or {}).get("tenants", {})
    missing = []
    for tenant in tenants:
        key = environ.get(KEY_ENV_PREFIX + tenant.upper()) or from_state.get(tenant, {}).get("api_key")
        if key:
            keys[tenant] = key
        else:
            missing.append(tenant)
    if missing:
        names = ", ".join(f"${KEY_ENV_PREFIX}{t.upper()}" for t in missing)
        raise TargetError(f"no API key for tenant(s) {', '.join(missing)}: set {names} "
                          "or start the sandbox (python -m sandbox up --detach)")
    return keys


def resolve_target(
    tenants: Iterable[str],
    host: str | None = None,
    directory: str | None = None,
    allow: Iterable[str] = (),
    environ: Mapping[str, str] = os.environ,
) -> Target:
    """Check the host (default: the sandbox gateway) and find every tenant's API key."""
    state = read_state(sandbox_dir(directory, environ))
    if host is None:
        if state is None:
            raise TargetError(
                f"no --host and no sandbox state file in {sandbox_dir(directory, environ)}: "
                "start one with `python -m sandbox up --detach` or pass --sandbox-dir/--host"
            )
        host = str(state["gateway_url"])
    allowed = allowed_hosts(allow, environ)
    host = check_host(host, allowed)
    # The sandbox's admin API belongs to the sandbox's gateway only, never to another host.
    same = state is not None and host == str(state.get("gateway_url", "")).rstrip("/")
    admin = state.get("admin_url") if same and state else None
    if admin is not None:
        admin = check_host(str(admin), allowed)
    token = str(state["admin_token"]) if admin is not None and state and "admin_token" in state \
        else None
    return Target(host, admin, _api_keys(tenants, state, environ), token)
