"""SOP-103's bulk token refresh as the runbook paces it: ``rate`` calls a second to the
provider's token endpoint, ``tokens_per_tenant`` of them per tenant, tenant after tenant.

The simulator's job (``sim/model/mitigations.py``) renews one token every ``1/rate``
seconds, the tenants in their order, and a tenant's 401 share falls token by token: its
provider answers each call 401 with a uniform draw against the share not renewed yet. The
stand-in does the same with real tokens. When the job starts, every tenant's credential
with the provider becomes a set of ``tokens_per_tenant`` tokens (one per user integration,
``sandbox.tokens``); each connector call draws one of them from a seeded stream
(``sandbox.connector``), and a token not renewed yet is the tenant's old one, refused with
a 401 after a revocation. The job stores each token in the set as its call is answered, so
the tenant's 401 share falls by ``1/tokens_per_tenant`` with every call, and it also
stores the tenant's last token as its single token. The set stays after the job (a later
revocation and refresh work on it again); the unpaced refresh drops it. The stand-in
renews every tenant (it cannot ask the provider which grants were revoked); the simulator
only the revoked share: the same when a provider's tokens are all revoked, as in every
shipped scenario.

``POST /admin/tokens/refresh {"provider", "rate", "tokens_per_tenant"}`` starts the job in
the background (one per provider; a new one replaces a running one) and answers at once;
``GET /admin/tokens/refresh`` reports each provider's last job: when it started and
finished (wall clock and seconds), ``in_effect_seconds`` (the registry's
``mitigation.token_refresh.in_effect_seconds``: from the job's start to its last token),
the tokens renewed and when each tenant's last token was stored (``usable_seconds``: from
then on every token of the tenant is a renewed one). The unpaced refresh (no ``rate``:
rollbacks, resets, the cold start) cancels a running job for its provider and leaves
every tenant one working token.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sandbox.errors import ApiError
from sandbox.tokens import fetch_token, open_set, store_in_set, store_token

if TYPE_CHECKING:
    from sandbox.admin.plane import ControlPlane

__all__ = ["MAX_TOKENS_PER_TENANT", "PacedRefresh", "cancel_paced", "paced_status",
           "start_paced"]

MAX_TOKENS_PER_TENANT = 100_000
MAX_RATE = 1000.0


@dataclass
class PacedRefresh:
    """One paced job's plan and progress (times: ``time.time()`` and seconds from start)."""

    provider: str
    rate: float
    tokens_per_tenant: int
    tenants: list[str]
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    tokens: int = 0
    usable: dict[str, float] = field(default_factory=dict)  # tenant -> seconds from start
    error: str | None = None
    task: asyncio.Task[None] | None = None

    def due(self, n: int) -> float:
        """When the ``n``-th call (1-based) is made: the simulator's ``n / rate``."""
        return self.started_at + n / self.rate

    def json(self) -> dict[str, Any]:
        done = self.finished_at is not None and self.error is None
        return {"provider": self.provider, "rate": self.rate,
                "tokens_per_tenant": self.tokens_per_tenant, "tenants": self.tenants,
                "state": "failed" if self.error else "done" if done else "running",
                "started_at": self.started_at, "finished_at": self.finished_at,
                "in_effect_seconds": (round(self.finished_at - self.started_at, 3)
                                      if done and self.finished_at is not None else None),
                "tokens": self.tokens,
                "usable_seconds": {t: round(s, 3) for t, s in self.usable.items()},
                "error": self.error}


def _jobs(plane: ControlPlane) -> dict[str, PacedRefresh]:
    jobs: dict[str, PacedRefresh] = plane.token_jobs
    return jobs


def _plan(plane: ControlPlane, provider: str, body: dict[str, Any]) -> PacedRefresh:
    rate, count = body.get("rate"), body.get("tokens_per_tenant", 1)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= MAX_RATE:
        raise ApiError(400, "BAD_REQUEST", f"rate must be a number in (0, {MAX_RATE:g}]")
    if (isinstance(count, bool) or not isinstance(count, int)
            or not 1 <= count <= MAX_TOKENS_PER_TENANT):
        raise ApiError(400, "BAD_REQUEST",
                       f"tokens_per_tenant must be an integer in [1, {MAX_TOKENS_PER_TENANT}]")
    return PacedRefresh(provider, float(rate), count, list(plane.state["tenants"]))


async def _renew(plane: ControlPlane, job: PacedRefresh, tenant: str) -> None:
    """The tenant's block: each token stored in its set as its call is answered."""
    url, secret = plane.state["providers"][job.provider], plane.state["internal"][
        "oauth_clients"][tenant]
    count = job.tokens_per_tenant
    for index in range(count):
        await asyncio.sleep(max(0.0, job.due(job.tokens + 1) - time.time()))
        token, ttl = await fetch_token(plane.http, url, job.provider, tenant, secret)
        await store_in_set(plane.store, plane.cipher, job.provider, tenant, index, count,
                           token, ttl)
        job.tokens += 1  # counted once connectors can use it
    await store_token(plane.store, plane.cipher, job.provider, tenant, token, ttl)
    job.usable[tenant] = time.time() - job.started_at


async def _run(plane: ControlPlane, job: PacedRefresh) -> None:
    try:
        for tenant in job.tenants:
            await open_set(plane.store, job.provider, tenant, job.tokens_per_tenant)
        for tenant in job.tenants:
            await _renew(plane, job, tenant)
    except ApiError as exc:
        job.error = exc.message
    except Exception as exc:  # Redis down: the job failed, and says so
        job.error = type(exc).__name__
    job.finished_at = time.time()
    if job.error is None:
        plane.faults.tokens_expired.pop(job.provider, None)
        plane.leases.end(f"tokens:{job.provider}")


def start_paced(plane: ControlPlane, provider: str, body: dict[str, Any]) -> dict[str, Any]:
    """Start the paced job for ``provider`` (replacing a running one); its plan."""
    job = _plan(plane, provider, body)
    cancel_paced(plane, provider)
    _jobs(plane)[provider] = job
    job.task = asyncio.get_running_loop().create_task(_run(plane, job))
    expected = len(job.tenants) * job.tokens_per_tenant / job.rate
    return {**job.json(), "expected_seconds": round(expected, 3)}


def cancel_paced(plane: ControlPlane, provider: str) -> None:
    """Stop a running paced job of ``provider`` (an unpaced refresh supersedes it)."""
    job = _jobs(plane).get(provider)
    if job is not None and job.task is not None and not job.task.done():
        job.task.cancel()
        job.error, job.finished_at = "cancelled by an unpaced refresh", time.time()


def paced_status(plane: ControlPlane) -> dict[str, Any]:
    """Every provider's last paced job (``GET /admin/tokens/refresh``)."""
    return {"jobs": {name: job.json() for name, job in _jobs(plane).items()}}
