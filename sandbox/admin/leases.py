"""Fault leases and the audit log of the control plane.

Every injected fault carries a lease (`lease_seconds` in the fault call, default
`DEFAULT_LEASE`, at most `MAX_LEASE`). The admin service itself reverts the fault when the
lease runs out, so a chaos run or a load test that is killed (or interrupted twice) cannot
leave a zone lost or a provider down for longer than its lease. Injecting the same fault again
renews the lease; reverting it by hand (restore, provider-clear, reset) ends it.

The audit log (`DIR/logs/audit.log`, one JSON object a line) records every admin and fault
call, refused ones included, and every lease expiry: who (peer address, `User-Agent`, optional
`X-OmniSQL-Actor`), what (method, path, status) and when.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sandbox.errors import ApiError

__all__ = ["DEFAULT_LEASE", "MAX_LEASE", "AuditLog", "Leases", "parse_lease"]

DEFAULT_LEASE = 900.0
MAX_LEASE = 3600.0
MIN_LEASE = 1.0

Revert = Callable[[], Awaitable[Any]]


def parse_lease(body: dict[str, Any]) -> float:
    """Pop `lease_seconds` from a fault body: a finite number in [1, 3600], default 900."""
    value = body.pop("lease_seconds", DEFAULT_LEASE)
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or not MIN_LEASE <= value <= MAX_LEASE):
        raise ApiError(400, "BAD_REQUEST",
                       f"lease_seconds must be a number in [{MIN_LEASE:g}, {MAX_LEASE:g}]")
    return float(value)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class AuditLog:
    """Append-only JSON lines; a write failure never fails the call it records."""

    path: Path

    def write(self, **entry: Any) -> None:
        try:
            with open(self.path, "a") as fh:
                fh.write(json.dumps({"at": _now_iso(), **entry}, sort_keys=True) + "\n")
        except OSError:
            pass


@dataclass
class _Lease:
    expires_at: float
    seconds: float
    task: asyncio.Task[None]


@dataclass
class Leases:
    """Active leases by fault key (`zone:az-a`, `provider:crm`, `canary`, ...)."""

    audit: AuditLog
    active: dict[str, _Lease] = field(default_factory=dict)

    def grant(self, key: str, seconds: float, revert: Revert) -> dict[str, Any]:
        self.end(key)  # a renewed fault gets a fresh lease
        task = asyncio.get_running_loop().create_task(self._expire(key, seconds, revert))
        self.active[key] = _Lease(time.time() + seconds, seconds, task)
        return self.describe(key)

    def end(self, key: str) -> None:
        """The fault was reverted some other way: the lease is over."""
        lease = self.active.pop(key, None)
        if lease is not None and lease.task is not asyncio.current_task():
            lease.task.cancel()

    def describe(self, key: str) -> dict[str, Any]:
        lease = self.active[key]
        return {"lease_seconds": lease.seconds,
                "expires_at": datetime.fromtimestamp(lease.expires_at, UTC)
                .isoformat(timespec="seconds"),
                "seconds_left": round(max(0.0, lease.expires_at - time.time()), 1)}

    def listing(self) -> dict[str, dict[str, Any]]:
        return {key: self.describe(key) for key in sorted(self.active)}

    async def _expire(self, key: str, seconds: float, revert: Revert) -> None:
        await asyncio.sleep(seconds)
        self.active.pop(key, None)  # before reverting: the revert ends leases, not this one
        try:
            await revert()
            outcome = "reverted"
        except Exception as exc:  # noqa: BLE001 - logged; the next reset retries it
            outcome = f"revert failed: {type(exc).__name__}"
        self.audit.write(who="lease", method="EXPIRE", path=key, status=outcome)

    def cancel_all(self) -> None:
        for key in list(self.active):
            self.end(key)
