"""OmniSQL probes, the same on every target: the gateway's stats, recovery, RPO, faults.

Probes whose name starts with ``within_``/``nothing_`` are tolerances: Chaos Toolkit calls
them with ``value=`` (the output of the probe they judge) and they return a bool.
"""

from __future__ import annotations

import math
import time
from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from . import ledger
from .api import admin_call, stats
from .settings import scenario_file, setting
from .slo import recovery_time, rto_target, slo_failures
from .timeline import run_end

__all__ = [
    "acknowledged_writes_lost",
    "active_faults",
    "blast_radius_ok",
    "cache_hit_ratio",
    "error_rate",
    "gateway_stats",
    "latency_p95",
    "measure_recovery",
    "measure_traffic",
    "nothing_injected",
    "rate_limited_ratio",
    "replica_lag",
    "tenant_slo",
    "unauthorized_ratio",
    "within_slo",
]


def gateway_stats(window: int | None = None, configuration: Configuration = None,
                  secrets: Secrets = None) -> dict[str, Any]:
    """The gateway's stats over the last ``window`` seconds (requests, errors, P95, ...);
    ``window`` defaults to ``omnisql_window``, else the scenario's ``run.window``. Each scope
    also counts its requests slower than the scenario's P95 target (``slow``), which
    :func:`within_slo` tests."""
    slo = scenario_file(configuration).scenario.slo
    return stats(_window(window, configuration), configuration, slow_above=slo.latency_p95)


def _window(window: int | None, configuration: Configuration) -> int:
    if window is None:
        window = (setting(configuration, "window")
                  or scenario_file(configuration).scenario.run.window)
    return max(1, int(float(window)))


def _recovery_limits(sustain: float | None, timeout: float | None,
                     configuration: Configuration,
                     metric: str = "rto_seconds") -> tuple[float, float]:
    """``sustain`` and ``timeout``: argument, else ``omnisql_sustain``/``omnisql_recovery_timeout``,
    else the scenario's ``slo.sustain`` and the RTO target of ``metric`` (:func:`.slo.rto_target`,
    as the wrapper's default timeout reads it)."""
    scenario = scenario_file(configuration).scenario
    if sustain is None:
        sustain = setting(configuration, "sustain") or scenario.slo.sustain
    if timeout is None:
        timeout = setting(configuration, "recovery_timeout") or rto_target(scenario, metric)
    return float(sustain), float(timeout)


def error_rate(window: int = 10, configuration: Configuration = None,
               secrets: Secrets = None) -> float:
    """Share of gateway requests answered with a status ≥ 400 over ``window`` seconds."""
    return float(stats(window, configuration)["error_rate"])


def latency_p95(window: int = 10, configuration: Configuration = None,
                secrets: Secrets = None) -> float | None:
    """Gateway P95 latency in seconds over ``window`` seconds (None without requests)."""
    value = stats(window, configuration)["latency_p95"]
    return None if value is None else float(value)


def tenant_slo(tenant: str, window: int = 10, configuration: Configuration = None,
               secrets: Secrets = None) -> dict[str, Any]:
    """One tenant's requests, error rate, P95 and 429s, and whether it meets the scenario's SLO."""
    data = stats(window, configuration)
    slo = scenario_file(configuration).scenario.slo
    mine = data.get("by_tenant", {}).get(tenant, {"requests": 0})
    return {**mine, "tenant": tenant, "slo_met": not slo_failures(data, slo, [tenant])}


def cache_hit_ratio(window: int = 10, configuration: Configuration = None,
                    secrets: Secrets = None) -> float | None:
    """(hit + stale) / successful answers over ``window`` seconds."""
    value = stats(window, configuration).get("cache_hit_ratio")
    return None if value is None else float(value)


def rate_limited_ratio(window: int = 10, tenant: str | None = None,
                       configuration: Configuration = None, secrets: Secrets = None) -> float:
    """Share of requests answered 429 (both codes), overall or for ``tenant``."""
    data = stats(window, configuration)
    scope = data if tenant is None else data.get("by_tenant", {}).get(tenant, {})
    return scope.get("rate_limited", 0) / max(1, scope.get("requests", 0))


def unauthorized_ratio(window: int = 10, configuration: Configuration = None,
                       secrets: Secrets = None) -> float:
    """Share of requests answered 401 or 502 PROVIDER_UNAUTHORIZED."""
    data = stats(window, configuration)
    return data.get("unauthorized", 0) / max(1, data.get("requests", 0))


def replica_lag(configuration: Configuration = None, secrets: Secrets = None) -> float | None:
    """Metadata replica lag in seconds (None when no replica streams)."""
    value = admin_call("GET", "/admin/metadata/status", configuration).get("replica_lag_seconds")
    return None if value is None else float(value)


def active_faults(configuration: Configuration = None, secrets: Secrets = None) -> dict[str, Any]:
    """The fault API's view of what is injected now (``GET /faults``)."""
    result: dict[str, Any] = admin_call("GET", "/faults", configuration)
    return result


#: Faults that take the metadata primary down (the ledger's kinds).
PRIMARY_LOSSES = ("az_loss", "region_loss", "metadata_failover")


def acknowledged_writes_lost(configuration: Configuration = None,
                             secrets: Secrets = None) -> dict[str, Any]:
    """RPO of the last metadata primary loss: the replica's lag at the loss, or the age of
    the snapshot a region's secondary restored (``failover.metadata.mode: snapshot``).

    That is the simulator's RPO (``topology.metadata.replication_lag``, or the failover's
    ``metadata.lag``, drawn at the loss): what a continuous writer loses, the writes
    acknowledged within the lag. The stand-in reads the lag just before it kills the
    primary (``GET /admin/metadata/lag``'s ``at_loss``). Beside it, the writes a
    :func:`~chaosomnisql.actions.start_metadata_writes` writer actually lost:
    ``lost = max(0, last acknowledged − max visible)`` and their span (how long before the
    last acknowledgement the newest surviving write was acknowledged); the RPO is at least
    that span. A target without the lag reading (no ``at_loss`` of this fault) falls back
    to the span (``rpo_source: acknowledged_writes``). When the stand-in copies metadata by
    snapshots (``GET /admin/metadata/snapshots``), the RPO is the loss − the restored
    snapshot's start (``rpo_source: snapshot_at_loss``) and ``failover.rpo_bound_seconds``
    is the interval its schedule ran with: the scheme's worst case, not a measurement.
    """
    snapshots = _snapshots_at_loss(configuration)
    lag = None if snapshots else _lag_at_loss(configuration)
    restored = (snapshots or {}).get("restored")
    writes = _writes_lost(configuration)
    if lag is None and writes is None and restored is None:
        raise ActivityFailed("neither the lag at the loss nor acknowledged writes were "
                             "recorded: start_metadata_writes before the failover")
    span = writes["lost_span_seconds"] if writes else 0.0
    before = restored["rpo_seconds"] if restored else lag
    rpo = round(max(before or 0.0, span), 6)
    ledger.LEDGER.running["rpo_seconds"] = rpo  # into the run's window facts
    measured = {"rpo_seconds": rpo, **_bound(snapshots)}
    source = ("snapshot_at_loss" if restored else "lag_at_loss" if lag is not None
              else "acknowledged_writes")
    blank = dict.fromkeys(("last_acknowledged", "max_visible", "lost", "lost_span_seconds"))
    return {**(writes or blank), "lag_at_loss_seconds": lag, "rpo_seconds": rpo,
            "rpo_source": source, "snapshot_restored": restored, "measured": measured}


def _bound(snapshots: dict[str, Any] | None) -> dict[str, float]:
    """The scheme's worst case, the interval the stand-in's schedule ran with, as a measured
    whole-run fact (into the window facts, as the canary's are); none without a schedule."""
    if not snapshots:
        return {}
    bound = {"failover.rpo_bound_seconds": float(snapshots["rpo_bound_seconds"])}
    ledger.LEDGER.running.setdefault("run_facts", {}).update(bound)
    return bound


def _snapshots_at_loss(configuration: Configuration) -> dict[str, Any] | None:
    """The stand-in's metadata snapshot schedule when this run's latest loss is a region's
    and a schedule ran (``failover.metadata.mode: snapshot``): its interval and the snapshot
    the secondary restored with its RPO (loss − the snapshot's start). None otherwise (a
    zone's loss promotes the streaming replica: its lag is the RPO)."""
    record = next((r for r in reversed(ledger.LEDGER.faults) if r.kind in PRIMARY_LOSSES),
                  None)
    if record is None or record.kind != "region_loss":
        return None
    try:
        schedule = admin_call("GET", "/admin/metadata/snapshots", configuration)
    except ActivityFailed:  # a target without snapshots (or an older stand-in)
        return None
    if schedule.get("rpo_bound_seconds") is None:
        return None
    restored = schedule.get("restored")
    if not restored or float(restored["lost_at"]) < record.wall_started - 1.0:
        restored = None  # no restore of this run's loss (it failed: GET /faults says why)
    return {"rpo_bound_seconds": float(schedule["rpo_bound_seconds"]), "restored": restored}


def _lag_at_loss(configuration: Configuration) -> float | None:
    """The stand-in's lag reading at this run's latest primary loss (None: none, or older)."""
    record = next((r for r in reversed(ledger.LEDGER.faults) if r.kind in PRIMARY_LOSSES),
                  None)
    try:
        reading = admin_call("GET", "/admin/metadata/lag", configuration).get("at_loss")
    except ActivityFailed:
        return None
    if record is None or not reading or reading.get("seconds") is None:
        return None
    # The reading is taken after the fault was recorded; 1 s of slack for clock rounding.
    if float(reading.get("at") or 0.0) < record.wall_started - 1.0:
        return None
    return float(reading["seconds"])


def _writes_lost(configuration: Configuration) -> dict[str, Any] | None:
    """The writer's acknowledged writes missing on the promoted replica, and their span."""
    acks = ledger.LEDGER.running.get("writer_acks")
    if not acks:
        return None
    visible = int(admin_call("GET", "/admin/metadata/writes", configuration)["max_visible"] or 0)
    last_time, last = acks[-1]
    lost = max(0, last - visible)
    kept = [t for t, n in acks if n <= visible]
    span = 0.0 if lost == 0 else last_time - (kept[-1] if kept else acks[0][0])
    return {"last_acknowledged": last, "max_visible": visible, "lost": lost,
            "lost_span_seconds": round(span, 3)}


def measure_recovery(window: int | None = None, sustain: float | None = None,
                     timeout: float | None = None, tenants: list[str] | None = None,
                     min_requests: int = 1, metric: str = "rto_seconds",
                     configuration: Configuration = None,
                     secrets: Secrets = None) -> dict[str, Any]:
    """RTO of the latest fault: judge consecutive ``window``-second stats windows from the
    fault's start against the scenario's SLO until it holds for ``sustain`` seconds, or
    ``timeout`` seconds pass, or the run ends (:mod:`.timeline`: never past
    ``run.duration``). ``rto_seconds`` is window-granular, None if not recovered; ``outcome``
    says whether the run's end or the timeout came first, as the simulator distinguishes
    "not recovered by the end of the run". Defaults: the scenario's ``run.window``,
    ``slo.sustain`` and RTO target, each overridable by ``omnisql_window``/
    ``omnisql_sustain``/``omnisql_recovery_timeout``. With ``tenants``, only their traffic
    is judged; ``metric`` names the scenario check the result answers (e.g.
    ``tenants_except.umbrella.rto_seconds``)."""
    start = ledger.LEDGER.last_fault_start()
    if start is None:
        raise ActivityFailed("no fault was injected before measure_recovery")
    slo = scenario_file(configuration).scenario.slo
    window = _window(window, configuration)
    sustain, timeout = _recovery_limits(sustain, timeout, configuration, metric)
    span, cut_by_end = _recovery_span(start, timeout + sustain, configuration)
    good: list[bool] = []
    misses: list[list[str]] = []
    rto = None
    while (len(good) + 1) * window <= span:
        time.sleep(max(0.0, start + (len(good) + 1) * window - time.monotonic()))
        try:
            reasons = slo_failures(stats(window, configuration), slo, tenants, min_requests)
        except ActivityFailed as unreadable:
            # The stand-in could not report the window (its gateway saturated by a retry
            # storm answered 502): the clients are not being served either, so the window
            # is a failing one, not the end of the measurement (05:03 retry_storm_mitigated
            # was interrupted here, 140 s into its storm).
            reasons = [f"stats unreadable: {unreadable}"]
        good.append(not reasons)
        misses.append(reasons)
        rto = recovery_time(good, window, sustain)
        if rto is not None:
            break
    outcome = ("recovered" if rto is not None else "not recovered by the end of the run"
               if cut_by_end else "not recovered within the timeout")
    return {"rto_seconds": rto, "recovered": rto is not None, "outcome": outcome,
            "windows": len(good), "waited_at_most": round(span, 3),
            "missed": [m for m in misses if m][:5], "measured": {metric: rto}}


def _recovery_span(start: float, limit: float,
                   configuration: Configuration) -> tuple[float, bool]:
    """Seconds after ``start`` the recovery may be watched: ``limit``, cut at the run's
    end; and whether the end cut it."""
    end = run_end(configuration)
    if end is None or end - start >= limit:
        return limit, False
    return max(0.0, end - start), True


def measure_traffic(window: int | None = None, tenants: list[str] | None = None,
                    prefix: str = "", since_fault: bool = False,
                    configuration: Configuration = None,
                    secrets: Secrets = None) -> dict[str, Any]:
    """Error rate and P95 over the last ``window`` seconds (or, with ``since_fault``, since
    the latest fault started), overall or pooled over ``tenants``, reported as scenario
    metrics ``<prefix>error_rate``/``<prefix>latency_p95``. Over several tenants this P95
    is the worst tenant's (the stats hold no pooled histogram): it is shown beside the
    verdict's value, which is the pooled P95 of the run's window facts (:mod:`.windows`)."""
    start = ledger.LEDGER.last_fault_start()
    if since_fault and start is None:
        raise ActivityFailed("since_fault: no fault was injected")
    if since_fault:
        window = math.ceil(time.monotonic() - start)  # type: ignore[operator]
    seconds = _window(window, configuration)
    data = stats(seconds, configuration)
    scopes = [data] if tenants is None else [data.get("by_tenant", {}).get(t, {}) for t in tenants]
    requests = sum(s.get("requests", 0) for s in scopes)
    errors = sum(s.get("errors", 0) for s in scopes)
    p95s = [s["latency_p95"] for s in scopes if s.get("latency_p95") is not None]
    measured = {f"{prefix}error_rate": errors / requests if requests else None,
                f"{prefix}latency_p95": max(p95s) if p95s else None}
    # The window lets the summary read Prometheus over the same seconds.
    return {"requests": requests, "errors": errors, "window": seconds, "measured": measured}


def blast_radius_ok(max_zones_lost: int = 1, max_error_rate: float = 0.5, window: int = 5,
                    configuration: Configuration = None, secrets: Secrets = None) -> bool:
    """Safeguard: at most ``max_zones_lost`` zones down and the error rate at most
    ``max_error_rate`` over ``window`` seconds; False aborts the run (and rolls back)."""
    zones_lost = len(active_faults(configuration).get("zones_lost", []))
    data = stats(window, configuration)
    return zones_lost <= max_zones_lost and (data.get("error_rate") or 0.0) <= max_error_rate


def within_slo(value: dict[str, Any] | None = None, tenants: list[str] | None = None,
               min_requests: int = 1, confidence: float = 0.95,
               configuration: Configuration = None, secrets: Secrets = None) -> bool:
    """Tolerance: the stats ``value`` meet the scenario's SLO (overall or for ``tenants``).

    A steady-state gate on a few seconds of traffic: the error rate fails only when the
    sample exceeds the budget at ``confidence`` (:func:`.slo.exceeds_error_budget`), and the
    P95 only when the sample shows more than 5 % of requests above the target at that
    confidence (:func:`.slo.exceeds_latency_target`, from the stats' ``slow`` counts)."""
    if not value:
        return False
    slo = scenario_file(configuration).scenario.slo
    return not slo_failures(value, slo, tenants, min_requests, confidence)


def nothing_injected(value: dict[str, Any] | None = None, configuration: Configuration = None,
                     secrets: Secrets = None) -> bool:
    """Tolerance: the fault API's answer shows no lost zone, provider fault, canary or kill,
    and no region loss whose failover is still under way (a completed one is the system
    now: the secondary region serves)."""
    if not value:
        return False
    region = value.get("region") or {"phase": "failed_over"}
    return (region.get("phase") == "failed_over"
            and not value.get("zones_lost") and not value.get("providers")
            and not value.get("canary") and not value.get("metadata_primary_killed")
            and not value.get("metadata_needs_rebuild"))
