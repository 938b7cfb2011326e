"""The stand-in from a scenario: each service's settings, and what the stand-in cannot honour.

:func:`default_config` is the stand-in as it runs without a scenario (today's behaviour);
:func:`config_from_scenario` maps a validated :class:`labcore.scenario.Scenario` onto the
same shape. Both are plain JSON, because they travel: the admin service pushes each section
to its services (``engine`` to every engine, ``connector`` to every connector, ``providers``
to the mock SaaS APIs, ``gateway`` to the gateway, ``cache`` into Redis, ``user_caps`` into
the metadata store), writes the whole of it to ``DIR/standin.json`` (so a restarted service
starts configured) and answers it on ``GET /admin/config``.

:func:`not_honoured` lists, by dotted path, every field of the scenario the stand-in cannot
act out, with the reason. Fields a *runner* acts out (``run``, ``slo``, ``checks``, the
workload's rates and mix, client retries, the fault and release timelines) are not the
stand-in's and are not listed, except faults and mitigations its APIs cannot express.
"""

from __future__ import annotations

import hashlib
from typing import Any

from labcore.distributions import Empirical
from labcore.scenario import (
    Canary,
    Coalescing,
    GrayFailure,
    LatencyInjection,
    Scenario,
    SoftCache,
    UserCapMitigation,
)
from sandbox.region import failover_section

__all__ = [
    "STANDIN_FILE", "config_from_scenario", "default_config", "derive_seed", "not_honoured",
]

#: The effective configuration, beside the state file (services read it at start).
STANDIN_FILE = "standin.json"
PROVIDER_NAMES = ("crm", "tickets")
ZONE_NAMES = ("az-a", "az-b", "az-c")
METADATA_ZONES = ("az-a", "az-b")  # pg-primary and pg-replica (sandbox.launch)


def derive_seed(seed: int, *parts: object) -> int:
    """The simulator's stream seed (``sim.kernel.streams.derive_seed``): the same run seed
    and name give the mock the same draws as the simulator's provider."""
    text = "/".join([str(seed), *map(str, parts)]).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


def _provider_default() -> dict[str, Any]:
    return {"latency": {"dist": "constant", "value": 0.005}, "reject_latency": None,
            "error_rate": 0.0, "seed": 0,
            "rate_limit": {"per_tenant": 200.0, "per_tenant_burst": 400.0, "app": None,
                           "app_burst": None, "retry_after_seconds": None}}


def default_config() -> dict[str, Any]:
    """The stand-in without a scenario (``null`` worker slots: no limit)."""
    return {
        "scenario": None,
        "gateway": {"timeout_seconds": 10.0, "zone_retry": True,
                    "health_check": {"interval_seconds": 0.5, "failure_threshold": 2,
                                     "success_threshold": 1, "timeout_seconds": 1.0}},
        "engine": {"workers": None, "queue_limit": None, "timeout_seconds": 9.0},
        "connector": {"workers": None, "queue_limit": None, "timeout_seconds": 8.0,
                      "retries": {"max_attempts": None, "honour_retry_after": True,
                                  "max_wait_seconds": 60.0, "total_wait_seconds": 1.0},
                      "control_plane": None, "seed": 0},
        "cache": {"enabled": True, "ttl_seconds": 60.0, "soft_cache": False, "coalesce": True},
        "providers": {name: _provider_default() for name in PROVIDER_NAMES},
        "user_caps": [],
        "release": None,
        "failover": None,
    }


def _dist(dist: Any) -> dict[str, Any]:
    data: dict[str, Any] = dist.model_dump(by_alias=True)
    return data


def _provider(spec: Any, seed: int) -> dict[str, Any]:
    limit = spec.rate_limit
    return {
        "latency": _dist(spec.latency), "reject_latency": _dist(spec.reject_latency),
        "error_rate": spec.error_rate, "seed": seed,
        "rate_limit": {
            "per_tenant": limit.per_tenant,
            "per_tenant_burst": (float(limit.per_tenant_burst or max(1.0, limit.per_tenant))
                                 if limit.per_tenant is not None else None),
            "app": limit.app,
            "app_burst": (float(limit.app_burst or max(1.0, limit.app))
                          if limit.app is not None else None),
            "retry_after_seconds": limit.retry_after},
    }


def _control_plane(spec: Any, seed: int) -> dict[str, Any] | None:
    """The connectors' control-plane tier (``sandbox.control_plane``); None without one or
    with an empirical time (not shipped to the services: listed as not honoured)."""
    if spec is None or any(isinstance(d, Empirical)
                           for d in (spec.policy_time, spec.token_lookup_time)):
        return None
    return {"workers": spec.workers_per_zone, "queue_limit": spec.queue_limit,
            "policy_time": _dist(spec.policy_time),
            "token_lookup_time": _dist(spec.token_lookup_time), "seed": seed}


def _starts_at_zero(mitigation: Any, scenario: Scenario) -> bool:
    return bool(mitigation.start(scenario.faults) == 0.0)


def _caps(scenario: Scenario) -> list[dict[str, Any]]:
    # One cap per (tenant, user), the later one winning: the policy store keeps one.
    found = {(c.tenant, c.user): c.max_concurrency for c in scenario.topology.gateway.user_caps}
    found.update({(m.tenant, m.user): m.max_concurrency for m in scenario.mitigations
                  if isinstance(m, UserCapMitigation) and _starts_at_zero(m, scenario)})
    return [{"tenant": t, "user": u, "max_concurrency": n} for (t, u), n in found.items()]


def _cache(scenario: Scenario) -> dict[str, Any]:
    # Coalescing and soft caching are runbook mitigations: on only when the scenario's
    # mitigations turn them on from the start (a later one is the runner's timeline action).
    def on(kind: type) -> bool:
        return any(isinstance(m, kind) and _starts_at_zero(m, scenario)
                   for m in scenario.mitigations)
    cache = scenario.topology.cache
    return {"enabled": cache.enabled, "ttl_seconds": cache.ttl,
            "soft_cache": on(SoftCache), "coalesce": on(Coalescing)}


def config_from_scenario(scenario: Scenario, label: str = "") -> dict[str, Any]:
    """What the stand-in runs for ``scenario`` (shape of :func:`default_config`)."""
    topo, seed = scenario.topology, scenario.run.seed
    health, conn = topo.gateway.health_check, topo.connectors
    config = default_config()
    providers = config["providers"]
    for name, spec in topo.providers.items():
        if name in providers:
            providers[name] = _provider(spec, seed)
    config.update({
        "scenario": {"name": scenario.name, "label": label or scenario.name, "seed": seed},
        "gateway": {"timeout_seconds": topo.gateway.timeout, "zone_retry": False,
                    "health_check": {"interval_seconds": health.interval,
                                     "failure_threshold": health.failure_threshold,
                                     "success_threshold": health.success_threshold,
                                     "timeout_seconds": min(1.0, health.interval)}},
        "engine": {"workers": topo.engine.workers_per_zone, "queue_limit": topo.engine.queue_limit,
                   "timeout_seconds": topo.gateway.timeout},
        "connector": {"workers": conn.workers_per_zone, "queue_limit": conn.queue_limit,
                      "timeout_seconds": conn.timeout,
                      "retries": {"max_attempts": conn.retries.max_attempts,
                                  "honour_retry_after": conn.retries.honour_retry_after,
                                  "max_wait_seconds": conn.retries.max_wait,
                                  "total_wait_seconds": None},
                      "control_plane": _control_plane(topo.control_plane, seed),
                      "seed": seed},
        "cache": _cache(scenario),
        "user_caps": _caps(scenario),
        # The canary analysis the admin runs at a deployment (sandbox.admin.canary), or the
        # blue-green cutover's version and drain (sandbox.admin.release; when is the runner's).
        "release": (scenario.release.model_dump(mode="json")
                    if scenario.release is not None else None),
        # The regional failover the admin acts out at a region loss (sandbox.admin.region).
        "failover": failover_section(scenario),
    })
    return config


# --------------------------------------------------------------------------- not honoured

_ALWAYS = {
    "topology.engine.service_time": "the stand-in's engine time is its real CPU time",
    "topology.cache.latency": "the cache is a real Redis on loopback",
}


def _differs(value: Any, default: Any) -> bool:
    return bool(value != default)


def _topology_gaps(scenario: Scenario) -> dict[str, str]:
    topo, out = scenario.topology, dict(_ALWAYS)
    gw, engine, cache, conn = topo.gateway, topo.engine, topo.cache, topo.connectors
    checks: list[tuple[str, bool, str]] = [
        ("topology.zones", tuple(topo.zones) != ZONE_NAMES,
         f"the stand-in has the zones {list(ZONE_NAMES)}"),
        ("topology.gateway.workers_per_zone", gw.workers_per_zone > 0,
         "the gateway is one process with no worker pool"),
        ("topology.gateway.service_time", _differs(gw.service_time.mean, 0.0),
         "the gateway's time is its real CPU time"),
        ("topology.gateway.routing", gw.routing != "round_robin",
         "the gateway routes round robin over healthy zones"),
        ("topology.gateway.outlier_detection", gw.outlier_detection is not None,
         "the gateway judges zones by health checks only"),
        ("topology.engine.miss_service_time", engine.miss_service_time is not None,
         "the engine's miss path costs its real CPU time"),
        ("topology.engine.drop_expired", engine.drop_expired,
         "queued work is not dropped when its client gave up"),
        ("topology.engine.autoscaling", engine.autoscaling is not None, "fixed engine pools"),
        ("topology.connectors.autoscaling", conn.autoscaling is not None,
         "fixed connector pools"),
        ("topology.connectors.enabled", not conn.enabled, "the connectors always call out"),
        ("topology.control_plane", topo.control_plane is not None
         and _control_plane(topo.control_plane, 0) is None,
         "empirical control-plane times are not shipped to the connectors"),
        ("topology.cache.nodes_per_zone", cache.nodes_per_zone != 1,
         "one Redis node serves every zone"),
        ("topology.cache.max_keys_per_node", cache.max_keys_per_node is not None,
         "Redis holds every key (no maxmemory)"),
        ("topology.metadata.replication_lag", True,
         "the replica's lag is PostgreSQL's real streaming lag (sampled: sim calibrate "
         "fits it)"),
        ("topology.metadata.failover_time", True,
         "promotion is an admin action (POST /admin/metadata/promote), not timed"),
        ("topology.metadata.primary_zone",
         topo.metadata.primary_zone not in (None, METADATA_ZONES[0]),
         f"the metadata primary is in {METADATA_ZONES[0]}"),
        ("topology.metadata.replica_zone",
         topo.metadata.replica_zone not in (None, METADATA_ZONES[1]),
         f"the metadata replica is in {METADATA_ZONES[1]}"),
    ]
    out.update({path: why for path, bad, why in checks if bad})
    return out


def _provider_gaps(scenario: Scenario) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, spec in scenario.topology.providers.items():
        where = f"topology.providers.{name}"
        if name not in PROVIDER_NAMES:
            out[where] = f"the stand-in's providers are {list(PROVIDER_NAMES)}"
            continue
        if spec.concurrency is not None:
            out[f"{where}.concurrency"] = "the mock's latency does not grow with its load"
        for field in ("latency", "reject_latency"):
            if isinstance(getattr(spec, field), Empirical):
                out[f"{where}.{field}"] = "empirical files are not shipped to the mock"
    return out


def _workload_gaps(scenario: Scenario, tenants: tuple[str, ...]) -> dict[str, str]:
    return {f"workload.tenants.{name}": f"the stand-in's tenants are {list(tenants)}"
            for name in scenario.workload.tenants if name not in tenants}


def _timeline_gaps(scenario: Scenario) -> dict[str, str]:
    out: dict[str, str] = {}
    for i, fault in enumerate(scenario.faults):
        if isinstance(fault, GrayFailure):
            out[f"faults.{i}"] = "gray_failure: the fault API cannot degrade a zone's tier"
        elif isinstance(fault, LatencyInjection) and not fault.target.startswith("provider:"):
            out[f"faults.{i}"] = f"latency_injection on {fault.target}: only providers"
    for i, mitigation in enumerate(scenario.mitigations):
        kind = mitigation.kind
        if kind in ("xfetch", "cache_scale"):
            out[f"mitigations.{i}"] = f"{kind}: the stand-in has no such lever"
        elif kind == "retry_policy":  # a client config push: labcore.retries.policy_pushes
            out[f"mitigations.{i}"] = (
                f"retry_policy at {mitigation.start(scenario.faults):g}s: the load's clients "
                "take it (Locust's users, the chaos load), not the stand-in")
        elif kind == "token_refresh":  # paced as the scenario says: sandbox.admin.token_refresh
            out[f"mitigations.{i}"] = (
                f"token_refresh at {mitigation.start(scenario.faults):g}s: the runner's timeline "
                "action; one token per tenant, usable when its last call is answered")
        elif not _starts_at_zero(mitigation, scenario):
            out[f"mitigations.{i}"] = (f"{kind} starts at {mitigation.start(scenario.faults):g}s: "
                                       "the runner's timeline action, not set at apply")
    if isinstance(scenario.release, Canary) and scenario.release.new_version.degradation:
        out["release.new_version.degradation"] = "the canary's error rate is fixed"
    out.update(_failover_gaps(scenario))
    return out


def _failover_gaps(scenario: Scenario) -> dict[str, str]:
    """A region loss is acted out (:mod:`sandbox.admin.region`); what of it is not."""
    spec = scenario.failover
    if spec is None:
        return {}
    out = {"failover.metadata.lag": "the replica's lag is PostgreSQL's real streaming lag "
           "(sampled: sim calibrate fits it)"}
    # Snapshots are taken and restored for real (sandbox.admin.snapshots); log shipping is
    # not, nor a snapshot of metadata that is not replicated (no copy to restore).
    mode = spec.metadata.mode
    if mode == "log_shipping" or (mode == "snapshot" and "metadata" not in spec.replicated):
        out["failover.metadata.mode"] = (f"{mode}: the metadata replica streams (RPO is "
                                         "the real lag, not a copy interval)")
    if "metadata" not in spec.replicated:
        out["failover.replicated"] = ("metadata not replicated: the secondary region still "
                                      "promotes the streaming replica (queries stay plannable)")
    return out


def not_honoured(scenario: Scenario, tenants: tuple[str, ...]) -> dict[str, str]:
    """Every scenario field the stand-in cannot act out → why, sorted by path."""
    found = {**_topology_gaps(scenario), **_provider_gaps(scenario),
             **_workload_gaps(scenario, tenants), **_timeline_gaps(scenario)}
    return dict(sorted(found.items()))
