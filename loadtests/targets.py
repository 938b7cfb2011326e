"""Where the load may go: the target host, its allowlist and the tenants' API keys.

A load test is a weapon pointed at a system, so the target is explicit and checked:

* the default host is the sandbox's ``gateway_url`` from its state file
  (``--sandbox-dir``, else ``$OMNISQL_SANDBOX_DIR``, else ``./.sandbox``);
* any host not on the allowlist (loopback names, plus ``$OMNISQL_ALLOWED_HOSTS`` and
  ``--allow-host``) is refused (:mod:`labcore.sandbox_client`, shared with the chaos
  extension; the old ``$OMNISQL_LOADTEST_ALLOWED_HOSTS`` still works, with a warning);
* API keys come from ``$OMNISQL_API_KEY_<TENANT>`` or the state file, never from a
  committed file, and are never printed (:class:`Target`'s ``repr`` hides them).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from labcore.sandbox_client import (
    LOOPBACK_HOSTS,
    SandboxError,
    allowed_hosts,
    check_url,
    read_state,
    sandbox_dir,
)

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

KEY_ENV_PREFIX = "OMNISQL_API_KEY_"
#: The load's name for the shared client's error: unknown or refused host, missing keys
#: or state file.
TargetError = SandboxError


@dataclass(frozen=True)
class Target:
    """A checked target: base URL, admin URL and token (sandbox only), one API key per tenant."""

    host: str
    admin_url: str | None
    api_keys: Mapping[str, str] = field(repr=False)
    admin_token: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return (f"Target(host={self.host!r}, admin_url={self.admin_url!r}, "
                f"tenants={sorted(self.api_keys)})")


def check_host(url: str, allowed: frozenset[str]) -> str:
    """Return ``url`` without a trailing slash if its host is allowed; raise otherwise."""
    return check_url(url, allowed, "--allow-host")


def _api_keys(
    tenants: Iterable[str], state: Mapping[str, Any] | None, environ: Mapping[str, str]
) -> dict[str, str]:
    keys: dict[str, str] = {}
    from_state = (state or {}).get("tenants", {})
    missing = []
    for tenant in tenants:
        key = (environ.get(KEY_ENV_PREFIX + tenant.upper())
               or from_state.get(tenant, {}).get("api_key"))
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
    token = state.get("admin_token") if admin is not None and state else None
    return Target(host, admin, _api_keys(tenants, state, environ), token or None)
