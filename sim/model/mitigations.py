"""Runbook mitigations as SimPy processes on the scenario's timeline (issue 3).

Like faults, each mitigation waits for its moment (from the start, at ``at``, or an
operator's ``operator_delay`` after a fault starts), then acts through a component's
narrow method: ``gateway.set_cap()`` (SOP-101), the cache's :class:`ReadThrough` and
``cache.scale()`` (SOP-102), ``provider.refresh()`` (SOP-103), ``client.set_policy()``.
A mitigation that never starts costs nothing on the data path.

Every mitigation is logged in ``system.logs["mitigations"]`` as ``{kind, start, end,
detail}``: ``start`` when it was applied, ``end`` when it was fully in effect (the new
cache nodes in service, the last token refreshed), and ``lifted`` when a temporary
action (a user cap with ``duration``) was undone; the report draws them on the
incident's time axis and :mod:`labcore.metrics` derives the ``mitigation.*`` metrics.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from labcore.scenario import (
    CacheScale,
    Coalescing,
    RetryPolicy,
    SoftCache,
    TokenRefresh,
    UserCapMitigation,
    XFetch,
)

if TYPE_CHECKING:
    import simpy

    from .system import System

__all__ = ["READ_THROUGH_KINDS", "start_mitigations"]

#: Mitigations that put the cache's read-through policy on the data path.
READ_THROUGH_KINDS = ("soft_cache", "coalescing", "xfetch")


def start_mitigations(system: System) -> None:
    system.logs["mitigations"] = []
    for mitigation in system.scenario.mitigations:
        system.env.process(_MITIGATIONS[type(mitigation)](system, mitigation))


def _wait(system: System, mitigation: Any) -> simpy.Event:
    start = mitigation.start(system.scenario.faults)
    return system.env.timeout(max(0.0, start - system.env.now))


def _log(system: System, mitigation: Any, detail: str) -> dict[str, Any]:
    entry = {"kind": mitigation.kind, "start": system.env.now, "end": system.env.now,
             "detail": detail}
    system.logs["mitigations"].append(entry)
    return entry


def _user_cap(system: System, m: UserCapMitigation) -> Iterator[simpy.Event]:
    yield _wait(system, m)
    system.gateway.set_cap(m.tenant, m.user, m.max_concurrency)
    who = "every user" if m.user == "*" else f"user {m.user}"
    entry = _log(system, m, f"cap {m.tenant} {who} at {m.max_concurrency} concurrent")
    if m.duration is not None:
        yield system.env.timeout(m.duration)
        system.gateway.set_cap(m.tenant, m.user, None)
        entry["lifted"] = system.env.now


def _read_through(system: System, m: SoftCache | Coalescing | XFetch) -> Iterator[simpy.Event]:
    yield _wait(system, m)
    policy = system.read_through
    assert policy is not None  # built by the system when a scenario has these
    policy.install(system.engine, system.connectors)
    if isinstance(m, SoftCache):
        policy.max_stale = m.max_stale
        system.cache.soft_purge = True
        detail = "soft caching on"
    elif isinstance(m, Coalescing):
        policy.coalesce = True
        detail = "request coalescing on"
    else:
        policy.beta = m.beta
        policy.single_flight = m.single_flight
        detail = f"XFetch on (beta {m.beta:g})" + ("" if m.single_flight else ", no lock")
    _log(system, m, detail)


def _cache_scale(system: System, m: CacheScale) -> Iterator[simpy.Event]:
    yield _wait(system, m)
    entry = _log(system, m, f"cache to {m.nodes_per_zone} node(s)/zone")
    yield system.env.timeout(m.provisioning_time)
    system.cache.scale(m.nodes_per_zone)
    entry["end"] = system.env.now


def _token_refresh(system: System, m: TokenRefresh) -> Iterator[simpy.Event]:
    """Refresh every invalid token, one endpoint call at a time at ``rate``."""
    yield _wait(system, m)
    provider = system.provider(m.provider)
    entry = _log(system, m, f"{m.provider} bulk token refresh")
    if m.rotate_secret:
        # Tokens issued under the old secret die with it, revoked or not.
        provider.revoke(list(range(len(system.tenant_names))))
        entry["detail"] += " after secret rotation"
        yield system.env.timeout(m.rotation_time)
    share = 1.0 / m.tokens_per_tenant
    plan = [(tenant, round(revoked * m.tokens_per_tenant))
            for tenant, revoked in enumerate(provider.revoked)]
    entry["tokens"] = sum(count for _, count in plan)
    for tenant, count in plan:
        for _ in range(count):
            yield system.env.timeout(1.0 / m.rate)
            provider.refresh(tenant, share)
    entry["end"] = system.env.now


def _retry_policy(system: System, m: RetryPolicy) -> Iterator[simpy.Event]:
    yield _wait(system, m)
    system.client.set_policy(m.budget, m.backoff, m.max_attempts)
    parts = [f"budget {m.budget:.0%}" if m.budget is not None else "",
             f"backoff {m.backoff}" if m.backoff else "",
             f"max {m.max_attempts} attempts" if m.max_attempts else ""]
    _log(system, m, "retries: " + ", ".join(p for p in parts if p))


_MITIGATIONS: dict[type, Any] = {
    UserCapMitigation: _user_cap,
    SoftCache: _read_through,
    Coalescing: _read_through,
    XFetch: _read_through,
    CacheScale: _cache_scale,
    TokenRefresh: _token_refresh,
    RetryPolicy: _retry_policy,
}
