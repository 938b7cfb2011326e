"""The scenario's fault timeline, replayed against the sandbox through its fault API.

Opt-in (``--inject-faults``): by default a load test only loads, and faults are someone
else's job (a Chaos Toolkit experiment, an SRE). With it, every fault of the scenario
becomes timed calls to the sandbox's admin URL (docs/sandbox.md), and ``POST
/faults/reset`` always runs at the end, followed by ``POST /admin/tokens/refresh`` for
every provider whose tokens the test revoked (the fault API's reset does not renew
tokens: without it the next run would start with 401s), so no fault outlives the test:

==================  ===================================================================
``az_loss``         ``POST /faults/az/{zone}/lose`` (``restore`` after ``duration``)
``provider_outage`` ``POST /faults/provider/{p} {"outage": true}``, then ``DELETE``
``latency_injection`` on ``provider:P``: ``latency_ms`` = (factor − 1) × the scenario's
                    mean provider latency, then ``DELETE``
``cache_flush``     ``POST /admin/cache/invalidate`` (``{"tenant"}`` if given)
``token_revocation`` ``POST /faults/tokens/expire {"provider", "fraction"}``
``traffic_surge``   nothing here: the load plan sends the surge (:mod:`loadtests.shapes`)
``region_loss``     ``POST /faults/region/lose``: the stand-in acts out the failover timeline
                    of the scenario the test applied (``sandbox.admin.region``); the end
                    also rebuilds the old metadata primary as the new replica
release blue_green  ``POST /admin/release/cutover {"version", "drain_timeout"}`` at
                    ``release.at``; before the reset the stand-in's account is read
                    (:meth:`FaultRunner.cutover_facts`: ``cutover.*``)
==================  ===================================================================

A canary release is not replayed (its analysis and rollback are the chaos experiment's).

The runbook's mitigations that start after the run does (``operator_delay`` after a fault,
or a later ``at``) are the operator's timed calls, as the chaos experiments make them;
those in force from the start are set when the scenario is applied:

==================  ===================================================================
``user_cap``        ``POST /admin/caps {"tenant", "user", "max_concurrency"}``, lifted
                    (``"max_concurrency": null``) after its ``duration``
``token_refresh``   ``POST /admin/tokens/refresh {"provider", "rate", "tokens_per_tenant"}``:
                    the stand-in's paced SOP-103 job
``retry_policy``    nothing here: the load's clients take the push (``labcore.retries``)
==================  ===================================================================

The fault API's reset puts the applied scenario's caps back and renews every token.

Latency injection on ``engine``, ``cache`` or ``gateway`` has no sandbox counterpart and
is refused as a :class:`FaultPlanError` before any load is sent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from labcore.cutover import RELEASE_PATH, cutover_facts
from labcore.sandbox_client import SandboxClient, SandboxError
from labcore.scenario import (
    AzLoss,
    BlueGreen,
    CacheFlush,
    LatencyInjection,
    ProviderOutage,
    RegionLoss,
    Scenario,
    TokenRefresh,
    TokenRevocation,
    TrafficSurge,
    UserCapMitigation,
)

__all__ = ["CUTOVER", "REGION_LOSS", "Action", "FaultPlanError", "FaultRunner", "fault_actions"]

log = logging.getLogger(__name__)


REGION_LOSS = "/faults/region/lose"
CUTOVER = "/admin/release/cutover"
CAPS = "/admin/caps"
_REBUILD = "/admin/metadata/rebuild"


class FaultPlanError(ValueError):
    """A scenario fault the sandbox's fault API cannot express."""


@dataclass(frozen=True)
class Action:
    """One timed call: at run time ``at``, ``method path`` with a JSON ``body``."""

    at: float
    method: str
    path: str
    body: dict[str, Any] | None = None


def _one(fault: Any, scenario: Scenario) -> list[Action]:
    at = fault.at
    if isinstance(fault, AzLoss):
        end = (Action(at + fault.duration, "POST", f"/faults/az/{fault.zone}/restore")
               if fault.duration is not None else None)
        lose = Action(at, "POST", f"/faults/az/{fault.zone}/lose")
        return [lose] if end is None else [lose, end]
    if isinstance(fault, ProviderOutage):
        path = f"/faults/provider/{fault.provider}"
        return [Action(at, "POST", path, {"outage": True}),
                Action(at + fault.duration, "DELETE", path)]
    if isinstance(fault, LatencyInjection):
        if not fault.target.startswith("provider:"):
            raise FaultPlanError(f"latency_injection on {fault.target!r} at {at:g}s has no "
                                 "sandbox fault (only provider:NAME can be injected)")
        name = fault.target.split(":", 1)[1]
        extra_ms = scenario.topology.providers[name].added_latency_ms(fault.factor)
        path = f"/faults/provider/{name}"
        return [Action(at, "POST", path, {"latency_ms": extra_ms}),
                Action(at + fault.duration, "DELETE", path)]
    if isinstance(fault, CacheFlush):
        body = {"tenant": fault.tenant} if fault.tenant else {}
        return [Action(at, "POST", "/admin/cache/invalidate", body)]
    if isinstance(fault, TokenRevocation):
        expire: dict[str, Any] = {"provider": fault.provider, "fraction": fault.fraction}
        return [Action(at, "POST", "/faults/tokens/expire", expire)]
    if isinstance(fault, TrafficSurge):
        return []
    if isinstance(fault, RegionLoss):
        return [Action(at, "POST", REGION_LOSS)]
    raise FaultPlanError(f"fault kind {fault.kind!r} has no sandbox counterpart")


def _release(scenario: Scenario) -> list[Action]:
    release = scenario.release
    if not isinstance(release, BlueGreen):
        return []
    return [Action(release.at, "POST", CUTOVER,
                   {"version": release.version, "drain_timeout": release.drain_timeout})]


def _mitigations(scenario: Scenario) -> list[Action]:
    """The operator's timed calls: the mitigations that start after the run does."""
    out = []
    for m in scenario.mitigations:
        start = m.start(scenario.faults)
        if start <= 0.0:
            continue  # in force from the start: set when the scenario is applied
        if isinstance(m, UserCapMitigation):
            cap = {"tenant": m.tenant, "user": m.user}
            out.append(Action(start, "POST", CAPS, {**cap, "max_concurrency": m.max_concurrency}))
            if m.duration is not None:
                out.append(Action(start + m.duration, "POST", CAPS,
                                  {**cap, "max_concurrency": None}))
        elif isinstance(m, TokenRefresh):
            if m.rotate_secret:
                raise FaultPlanError("token_refresh with rotate_secret has no sandbox call")
            out.append(Action(start, "POST", "/admin/tokens/refresh",
                              {"provider": m.provider, "rate": m.rate,
                               "tokens_per_tenant": m.tokens_per_tenant}))
    return out


def fault_actions(scenario: Scenario, until: float | None = None) -> list[Action]:
    """Every call of the scenario's timeline (faults, a blue-green release, the operator's
    timed mitigations) before ``until``, in time order."""
    until = scenario.run.duration if until is None else until
    actions = ([a for f in scenario.faults for a in _one(f, scenario)] + _release(scenario)
               + _mitigations(scenario))
    return sorted((a for a in actions if a.at < until), key=lambda a: a.at)


class FaultRunner:
    """Runs the actions on the clock; :meth:`reset` undoes everything (always call it)."""

    def __init__(self, admin_url: str, actions: list[Action],
                 call: Callable[[str, Action], int] | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 admin_token: str | None = None,
                 read: Callable[[str], Any] | None = None) -> None:
        if call is None:  # the shared sandbox client (it sends the admin token if any)
            client = SandboxClient(admin_url, admin_token, timeout=10.0)
            call = lambda _, a: client.status(a.method, a.path, a.body)  # noqa: E731
            read = read or (lambda path: client.call("GET", path))
        self.admin_url, self.actions, self.call, self.sleep = admin_url, actions, call, sleep
        self.read = read  # GET an admin path's JSON (the cutover's account)
        self.done: list[tuple[float, Action, int]] = []
        self.undone: list[tuple[Action, int]] = []  # the reset's calls and their statuses

    def run(self, clock: Callable[[], float]) -> None:
        """Fire each action when ``clock()`` (run time) reaches its ``at``."""
        for action in self.actions:
            wait = action.at - clock()
            if wait > 0:
                self.sleep(wait)
            fired = clock()
            try:
                status = self.call(self.admin_url, action)
            except OSError as exc:  # refused, timed out: the fault did not happen
                log.error("fault %s %s failed: %s", action.method, action.path, exc)
                status = 0
            self.done.append((fired, action, status))
            level = logging.INFO if 200 <= status < 300 else logging.ERROR
            log.log(level, "fault %s %s at %.1fs -> %s (%.1fs)", action.method, action.path,
                    fired, status, clock() - fired)

    @property
    def failed(self) -> list[Action]:
        """Calls that did not answer 2xx: the timeline did not run as the scenario says."""
        return [action for _, action, status in self.done if not 200 <= status < 300]

    def cutover_facts(self) -> dict[str, float | None]:
        """The ``cutover.*`` facts of a cutover this run made, read from the stand-in now
        (call it before :meth:`reset`, which ends the release); empty when none was made,
        its call failed, it still drains (the run ended first) or nothing answered."""
        made = any(a.path == CUTOVER and 200 <= s < 300 for _, a, s in self.done)
        if not made or self.read is None:
            return {}
        try:
            return cutover_facts(self.read(RELEASE_PATH))
        except (OSError, SandboxError) as exc:
            log.error("GET %s failed: %s", RELEASE_PATH, exc)
            return {}

    def reset(self) -> int | None:
        """``POST /faults/reset`` if anything was injected, then a token refresh per provider
        whose tokens were revoked; the worst status (0: no answer), or None if nothing ran."""
        if not self.done:
            return None
        self.undone = [(action, self._undo(action)) for action in self.undo_actions()]
        statuses = [status for _, status in self.undone]
        return min(statuses, key=lambda s: 200 <= s < 300)  # a failure first, else the first

    def undo_actions(self) -> list[Action]:
        """The calls that undo what ran: the fault API's reset and the token refreshes."""
        revoked = sorted({str((a.body or {})["provider"]) for _, a, _ in self.done
                          if a.path == "/faults/tokens/expire"})
        # A region loss's failover promoted the replica: the old primary becomes its replica.
        rebuild = [Action(0.0, "POST", _REBUILD)] if any(
            a.path == REGION_LOSS for _, a, _ in self.done) else []
        return [Action(0.0, "POST", "/faults/reset"), *rebuild,
                *(Action(0.0, "POST", "/admin/tokens/refresh", {"provider": p}) for p in revoked)]

    def _undo(self, action: Action) -> int:
        try:
            status = self.call(self.admin_url, action)
            # 409: no demoted primary (the test ended before the failover promoted one).
            return 200 if action.path == _REBUILD and status == 409 else status
        except OSError as exc:
            log.error("%s %s failed: %s", action.method, action.path, exc)
            return 0
