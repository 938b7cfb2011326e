"""OmniSQL actions, the same on every target: experiments name these.

Infrastructure faults (zone loss, metadata and cache failover) go to the configured
target's module (:mod:`.sandbox.actions` or :mod:`.eks.actions`); control-plane actions
(cache, tokens, canary, caps) and the lab's fault API use OmniSQL's HTTP API, whose
address comes from the target (the sandbox's state file, or ``omnisql_admin_url``).
Every injected fault is recorded in the :mod:`.ledger` so that the recovery probe knows
when it started. :func:`wait_for_fault` and :func:`run_until_end` (from :mod:`.timeline`)
put the method on the scenario's timeline; :func:`cut_over_release` (from :mod:`.cutover`)
is the blue-green release's cutover.
"""

from __future__ import annotations

import importlib
import threading
import time
from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from . import ledger
from .api import admin_call
from .cutover import cut_over_release
from .load import BackgroundLoad, plan_from_scenario
from .settings import api_keys, endpoints, scenario_file, setting, target_name
from .timeline import run_until_end, wait_for_fault

__all__ = [
    "apply_concurrency_cap",
    "clear_concurrency_cap",
    "cut_over_release",
    "deploy_canary",
    "end_provider_latency",
    "end_metadata_kill",
    "expire_tokens",
    "fail_over_cache",
    "fail_over_metadata",
    "inject_provider_latency",
    "invalidate_cache",
    "lose_region",
    "lose_zone",
    "promote_metadata_replica",
    "rebuild_metadata_replica",
    "refresh_tokens",
    "reset_faults",
    "restore_zone",
    "rollback_canary",
    "run_until_end",
    "set_cache_options",
    "start_metadata_writes",
    "start_tenant_flood",
    "stop_metadata_writes",
    "stop_tenant_flood",
    "wait_for_fault",
    "wait_tenant_flood",
]


def _target(configuration: Configuration) -> Any:
    return importlib.import_module(f"chaosomnisql.{target_name(configuration)}.actions")


# ----------------------------------------------------------------- infrastructure faults


def lose_zone(zone: str, configuration: Configuration = None, secrets: Secrets = None) -> Any:
    """Lose availability zone ``zone`` on the configured target (sandbox or EKS)."""
    ledger.LEDGER.injected("az_loss", zone)
    return _target(configuration).lose_zone(zone, configuration=configuration, secrets=secrets)


def restore_zone(zone: str, configuration: Configuration = None, secrets: Secrets = None) -> Any:
    """Bring availability zone ``zone`` back (also a rollback)."""
    result = _target(configuration).restore_zone(zone, configuration=configuration,
                                                 secrets=secrets)
    ledger.LEDGER.restored("az_loss", zone)
    return result


def lose_region(configuration: Configuration = None, secrets: Secrets = None) -> Any:
    """Lose the primary region: every zone and the metadata primary at once, then the
    scenario's failover timeline (on the sandbox, ``POST /faults/region/lose``: the stand-in
    acts out the timeline of the scenario it was configured with). A running metadata writer
    is stopped right after the loss, so its last acknowledged write is the one the failover
    may lose (the RPO, measured by ``acknowledged_writes_lost`` once the replica is
    promoted). The rollback ``reset_faults`` ends the failover wherever it is."""
    ledger.LEDGER.injected("region_loss", "primary")
    result = _target(configuration).lose_region(configuration=configuration, secrets=secrets)
    stop_metadata_writes(configuration, secrets)
    return result


def fail_over_metadata(configuration: Configuration = None, secrets: Secrets = None) -> Any:
    """Lose the metadata primary and fail over to the replica (RDS Multi-AZ on EKS).

    A running metadata writer (:func:`start_metadata_writes`) is stopped once the primary
    is gone and before the promotion, so that its last acknowledged write is the one the
    failover may lose (writes after promotion would reuse the lost sequence numbers).
    """
    ledger.LEDGER.injected("metadata_failover", "primary")
    target = _target(configuration)
    if target_name(configuration) != "sandbox":
        result = target.fail_over_metadata(configuration=configuration, secrets=secrets)
        stop_metadata_writes(configuration, secrets)
        return result
    target.kill_metadata_primary(configuration=configuration, secrets=secrets)
    stop_metadata_writes(configuration, secrets)
    return target.promote_metadata_replica(configuration=configuration, secrets=secrets)


def promote_metadata_replica(configuration: Configuration = None,
                             secrets: Secrets = None) -> Any:
    """If the metadata primary is down (its zone was lost), stop the metadata writer and
    promote the replica: what RDS Multi-AZ does by itself (a no-op on ``eks``)."""
    if target_name(configuration) != "sandbox":
        stop_metadata_writes(configuration, secrets)
        return {"promoted": False, "reason": "RDS Multi-AZ fails over by itself"}
    status = admin_call("GET", "/admin/metadata/status", configuration)
    stop_metadata_writes(configuration, secrets)
    if status["primary"]["role"] != "down":
        return {"promoted": False, "reason": f"primary {status['primary']['name']} is up"}
    return _target(configuration).promote_metadata_replica(configuration=configuration,
                                                           secrets=secrets)


def fail_over_cache(configuration: Configuration = None, secrets: Secrets = None) -> Any:
    """Fail the result cache over to its replica (ElastiCache ``test_failover`` on EKS)."""
    ledger.LEDGER.injected("cache_failover", "redis")
    return _target(configuration).fail_over_cache(configuration=configuration, secrets=secrets)


def rebuild_metadata_replica(configuration: Configuration = None,
                             secrets: Secrets = None) -> Any:
    """Turn a demoted metadata primary into the new replica (sandbox; RDS does it itself)."""
    if target_name(configuration) != "sandbox":
        return {"skipped": "RDS Multi-AZ rebuilds its standby itself"}
    return _target(configuration).rebuild_metadata_replica(configuration=configuration,
                                                           secrets=secrets)


def reset_faults(configuration: Configuration = None, secrets: Secrets = None) -> Any:
    """Undo every fault the lab's fault API knows of, stop floods and writers, and renew the
    tokens of every provider this run revoked and did not refresh (the fault API's reset
    does not: the next run would start with 401s) (rollback)."""
    stop_tenant_flood(configuration, secrets)
    stop_metadata_writes(configuration, secrets)
    result = admin_call("POST", "/faults/reset", configuration)
    revoked = {r.target for r in ledger.LEDGER.faults
               if r.kind == "token_revocation" and r.restored_at is None}
    for provider in sorted(revoked):
        refresh_tokens(provider, configuration, secrets)
    return result


def end_metadata_kill(configuration: Configuration = None, secrets: Secrets = None) -> Any:
    """Close the failover's fault: once the replica was promoted and the old primary rebuilt
    as the new replica, the stand-in still lists its primary as killed (that flag is
    cleared only by the fault API's reset), so the after-hypothesis would fail whatever
    the failover did. This ends it through the reset, and only when nothing else is
    injected, nothing waits for a rebuild and a region loss's failover is complete (else it
    fails: nothing is hidden)."""
    if target_name(configuration) != "sandbox":
        return {"skipped": "RDS Multi-AZ keeps no kill to end"}
    now = admin_call("GET", "/faults", configuration)
    others = [k for k in ("zones_lost", "providers", "canary", "metadata_needs_rebuild")
              if now.get(k)]
    if (now.get("region") or {}).get("phase", "failed_over") != "failed_over":
        others.append("region")
    if others:
        raise ActivityFailed(f"not ending the metadata kill: still injected: {others}")
    if not now.get("metadata_primary_killed"):
        return {"ended": False}
    admin_call("POST", "/faults/reset", configuration)
    for kind in ("metadata_failover", "region_loss"):
        ledger.LEDGER.restored(kind, "primary")
    return {"ended": True}


# ----------------------------------------------------------------- the lab's fault API


def expire_tokens(provider: str, fraction: float = 1.0, configuration: Configuration = None,
                  secrets: Secrets = None) -> Any:
    """Revoke ``fraction`` of the tenants' live OAuth tokens at ``provider`` (→ 401s)."""
    ledger.LEDGER.injected("token_revocation", provider)
    return admin_call("POST", "/faults/tokens/expire", configuration,
                      {"provider": provider, "fraction": fraction})


def inject_provider_latency(provider: str, factor: float, seconds: float | None = None,
                            configuration: Configuration = None, secrets: Secrets = None) -> Any:
    """Slow ``provider`` down ``factor``-fold for ``seconds`` (default
    ``omnisql_fault_seconds``, else the scenario's ``latency_injection`` duration on it).

    The fault API adds a fixed ``latency_ms``: (factor - 1) x the scenario's mean latency of
    the provider (``Provider.added_latency_ms``, the rule Locust's fault replay uses too). The
    stand-in ends it by itself when its lease (``seconds``) runs out, on time whatever the
    method is doing then (measuring recovery); the rollbacks' reset ends it sooner."""
    scenario = scenario_file(configuration).scenario
    spec = scenario.topology.providers.get(provider)
    if spec is None:
        raise ActivityFailed(f"provider {provider!r} is not in the scenario's topology")
    if seconds is None:
        lasts = [f.duration for f in scenario.faults
                 if f.kind == "latency_injection" and f.target == f"provider:{provider}"]
        seconds = float(setting(configuration, "fault_seconds") or (lasts[0] if lasts else 60))
    extra_ms = spec.added_latency_ms(factor)
    record = ledger.LEDGER.injected("latency_injection", f"provider:{provider}")
    ledger.LEDGER.running[f"latency:{provider}"] = record.started_at + float(seconds)
    answer = admin_call("POST", f"/faults/provider/{provider}", configuration,
                        {"latency_ms": extra_ms, "lease_seconds": max(1.0, float(seconds))})
    return {"provider": provider, "latency_ms": extra_ms, "seconds": seconds, "answer": answer}


def end_provider_latency(provider: str, configuration: Configuration = None,
                         secrets: Secrets = None) -> Any:
    """Wait for the end of :func:`inject_provider_latency`'s fault on ``provider`` (its
    lease), end it (idempotent) and record its end, on time, for the run's fault marks."""
    end = ledger.LEDGER.running.pop(f"latency:{provider}", None)
    if end is None:
        return {"ended": False}
    time.sleep(max(0.0, end - time.monotonic()))
    answer = admin_call("DELETE", f"/faults/provider/{provider}", configuration)
    ledger.LEDGER.restored("latency_injection", f"provider:{provider}", min(end, time.monotonic()))
    return {"ended": True, "answer": answer}


# ----------------------------------------------------------------- control plane (SOPs)


def invalidate_cache(tenant: str | None = None, configuration: Configuration = None,
                     secrets: Secrets = None) -> Any:
    """Drop the cached results of ``tenant`` (all tenants if omitted): a stampede's trigger."""
    ledger.LEDGER.injected("cache_flush", tenant or "*")
    return admin_call("POST", "/admin/cache/invalidate", configuration,
                      {"tenant": tenant} if tenant else {})


def set_cache_options(soft_cache: bool | None = None, coalesce: bool | None = None,
                      ttl_seconds: float | None = None, configuration: Configuration = None,
                      secrets: Secrets = None) -> Any:
    """SOP-102: soft caching (serve stale while one refresh runs), coalescing, TTL."""
    body = {k: v for k, v in {"soft_cache": soft_cache, "coalesce": coalesce,
                              "ttl_seconds": ttl_seconds}.items() if v is not None}
    return admin_call("POST", "/admin/cache/options", configuration, body)


def refresh_tokens(provider: str, configuration: Configuration = None,
                   secrets: Secrets = None) -> Any:
    """SOP-103: the control plane's bulk token refresh for ``provider``."""
    result = admin_call("POST", "/admin/tokens/refresh", configuration, {"provider": provider})
    ledger.LEDGER.restored("token_revocation", provider)
    return result


def deploy_canary(version: str, weight: float, error_rate: float = 0.0,
                  latency_multiplier: float = 1.0, configuration: Configuration = None,
                  secrets: Secrets = None) -> Any:
    """Send ``weight`` of the traffic to engine ``version`` (a bad one: ``error_rate`` > 0).
    The target runs the scenario's canary analysis from here (:func:`.probes.measure_canary`
    reads its decision); ``omnisql_canary_window``/``omnisql_canary_min_samples`` shorten it
    (short mode)."""
    ledger.LEDGER.injected("canary", version)
    body: dict[str, Any] = {"version": version, "weight": weight, "error_rate": error_rate,
                            "latency_multiplier": latency_multiplier}
    overrides = {key: float(value) if key == "window" else int(value)
                 for key, value in (("window", setting(configuration, "canary_window")),
                                    ("min_samples", setting(configuration, "canary_min_samples")))
                 if value is not None}
    if overrides:
        body["analysis"] = overrides
    return admin_call("POST", "/admin/canary", configuration, body)


def rollback_canary(configuration: Configuration = None, secrets: Secrets = None) -> Any:
    """Roll the canary back (weight 0)."""
    result = admin_call("DELETE", "/admin/canary", configuration)
    for record in ledger.LEDGER.faults:
        if record.kind == "canary":
            ledger.LEDGER.restored("canary", record.target)
    return result


def apply_concurrency_cap(tenant: str, user: str, max_concurrency: int,
                          configuration: Configuration = None, secrets: Secrets = None) -> Any:
    """SOP-101: cap one user's concurrent queries (the noisy tenant's)."""
    return admin_call("POST", "/admin/caps", configuration,
                      {"tenant": tenant, "user": user, "max_concurrency": int(max_concurrency)})


def clear_concurrency_cap(tenant: str, user: str, configuration: Configuration = None,
                          secrets: Secrets = None) -> Any:
    """Remove the cap set by :func:`apply_concurrency_cap` (rollback)."""
    return admin_call("POST", "/admin/caps", configuration,
                      {"tenant": tenant, "user": user, "max_concurrency": None})


# ----------------------------------------------------------------- floods and writers


def start_tenant_flood(tenant: str, factor: float, seconds: float | None = None,
                       max_requests: int = 20000, configuration: Configuration = None,
                       secrets: Secrets = None) -> Any:
    """Flood from ``tenant`` at ``factor`` × its scenario rate (scaled), for at most
    ``seconds`` (default ``omnisql_fault_seconds``, else the scenario's surge duration) and
    ``max_requests``: a noisy neighbour. Stops by itself."""
    scenario = scenario_file(configuration).scenario
    if tenant not in scenario.workload.tenants:
        raise ActivityFailed(f"tenant {tenant!r} is not in the scenario's workload")
    if seconds is None:
        surges = [f.duration for f in scenario.faults
                  if f.kind == "traffic_surge" and f.tenant == tenant]
        seconds = float(setting(configuration, "fault_seconds") or (surges[0] if surges else 60))
    stop_tenant_flood(configuration, secrets)
    plan = plan_from_scenario(scenario, seconds, max_requests, factor, tenants=(tenant,))
    windows = ledger.LEDGER.running.get("windows")  # the run's windows: the flood counts
    flood = BackgroundLoad(plan, endpoints(configuration)["gateway_url"],
                           {tenant: api_keys(secrets)[tenant]}, recorder=windows,
                           origin=windows.origin if windows is not None else 0.0).start()
    ledger.LEDGER.running["flood"] = flood
    ledger.LEDGER.injected("traffic_surge", tenant)
    return {"tenant": tenant, "rate_per_s": plan.total_rate, "seconds": seconds}


def wait_tenant_flood(configuration: Configuration = None, secrets: Secrets = None) -> Any:
    """Let the running flood last its whole duration (the scenario's fault duration, as the
    simulator's surge does), then report what it sent, by status, and how long it ran.

    The method calls this after measuring: the flood is not cut short when recovery is
    seen. It is bounded by the flood's own ``seconds``; a rollback still stops it at once."""
    flood = ledger.LEDGER.running.get("flood")
    if flood is None:
        return {"stopped": False}
    record = next((r for r in reversed(ledger.LEDGER.faults) if r.kind == "traffic_surge"), None)
    started = record.started_at if record is not None else time.monotonic()
    flood.wait(max(0.0, started + flood.plan.seconds - time.monotonic()) + 30.0)
    ledger.LEDGER.running.pop("flood", None)
    ledger.LEDGER.restored("traffic_surge", flood.plan.tenants[0].tenant)
    return {"stopped": True, "ran_seconds": round(time.monotonic() - started, 3),
            **flood.report.as_dict()}


def stop_tenant_flood(configuration: Configuration = None, secrets: Secrets = None) -> Any:
    """Stop the running flood, if any; what it sent, by status."""
    flood = ledger.LEDGER.running.pop("flood", None)
    if flood is None:
        return {"stopped": False}
    report = flood.stop().as_dict()
    ledger.LEDGER.restored("traffic_surge", flood.plan.tenants[0].tenant)
    return {"stopped": True, **report}


class MetadataWriter:
    """Sequenced metadata writes in batches, keeping when each batch was acknowledged."""

    def __init__(self, batch: int, interval: float, seconds: float,
                 configuration: Configuration) -> None:
        self.batch, self.interval, self.seconds = batch, interval, seconds
        self.configuration = configuration
        self.acks: list[tuple[float, int]] = []  # (monotonic time, last_acknowledged)
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="omnisql-writer", daemon=True)

    def _run(self) -> None:
        end = time.monotonic() + self.seconds
        while time.monotonic() < end and not self._stop.is_set():
            try:
                answer = admin_call("POST", "/admin/metadata/writes", self.configuration,
                                    {"n": self.batch})
                if answer.get("last_acknowledged") is not None:
                    self.acks.append((time.monotonic(), int(answer["last_acknowledged"])))
                self.errors += bool(answer.get("error"))
            except ActivityFailed:
                self.errors += 1
            self._stop.wait(self.interval)

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join(90)
        return {"batches": len(self.acks), "errors": self.errors,
                "last_acknowledged": self.acks[-1][1] if self.acks else None}


def start_metadata_writes(batch: int = 20, interval: float = 0.1, seconds: float = 60.0,
                          configuration: Configuration = None, secrets: Secrets = None) -> Any:
    """Write sequenced metadata rows in the background (for RPO), for at most ``seconds``."""
    stop_metadata_writes(configuration, secrets)
    writer = MetadataWriter(int(batch), float(interval), float(seconds), configuration)
    writer._thread.start()
    ledger.LEDGER.running["writer"] = writer
    return {"batch": batch, "interval": interval, "seconds": seconds}


def stop_metadata_writes(configuration: Configuration = None, secrets: Secrets = None) -> Any:
    """Stop the metadata writer, if any."""
    writer = ledger.LEDGER.running.pop("writer", None)
    if writer is None:
        return {"stopped": False}
    report = writer.stop()
    ledger.LEDGER.running["writer_acks"] = list(writer.acks)
    return report
