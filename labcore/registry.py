"""The metric registry: every metric the lab names, defined once.

Each entry gives the metric's name (a pattern where it is parametrised: ``<tenant>``,
``<tier>``, ``<cause>``, ``<kind>``), its unit, the scopes a check may judge it over, the
runners that can observe it and at which scopes, and a one-line definition (the docs'
metric table is :func:`markdown_table`). The simulator computes the metrics
(:mod:`labcore.metrics`), the Locust client computes the client-side ones with the same
code, and so does the chaos extension from its load's client windows (plus the RPO of a
failover and the incident's client-side metrics); a runner that cannot observe
a check's metric over the check's scope reports it "not measured" because this registry
says so, and ``validate`` refuses a check this registry does not know.

A scope is which windows a metric is computed over (``run``, ``before_fault``,
``outside_recovery``, ``after_recovery``); :func:`metric_key` is the one rule that names a
metric at a scope: ``metric`` for ``run``, ``metric@scope`` otherwise.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Iterable, Literal, Mapping

from .facts import OUTCOMES
from .scenario.checks import SCOPES, Scope

__all__ = [
    "METRICS", "RUNNERS", "Metric", "Runner", "lookup", "markdown_table", "metric_key",
    "not_observed_reason", "problem", "split_key", "suggest", "TIERS",
]

Runner = Literal["sim", "chaos", "locust"]
RUNNERS: tuple[Runner, ...] = ("sim", "chaos", "locust")

#: The queueing tiers a ``<tier>`` stands for (``control_plane`` only when it is modelled).
TIERS = ("gateway", "engine", "connector", "control_plane")

#: What a placeholder in a metric pattern stands for.
_PLACEHOLDERS = {
    "<tenant>": r"[A-Za-z][A-Za-z0-9_-]*",
    "<tier>": "|".join(TIERS),
    "<cause>": "|".join(OUTCOMES[1:]),
    "<kind>": r"[a-z][a-z_]*",
    "<x>": r"[0-9][0-9_]*(?:ms|s)",
}
_FACT: tuple[Scope, ...] = ("run",)  # whole-run facts: the same whatever the scope


@dataclass(frozen=True)
class Metric:
    """One metric: name (or pattern), unit, allowed scopes, observers, definition.

    ``runners`` maps each runner that can observe the metric to the scopes it can observe
    it over. ``locust_needs_faults``: Locust observes it only when the fault timeline was
    actually run against the target (``--inject-faults`` / ``--faults-external``).
    """

    name: str
    unit: str
    definition: str
    scopes: tuple[Scope, ...] = SCOPES
    runners: Mapping[Runner, tuple[Scope, ...]] = field(default_factory=dict)
    locust_needs_faults: bool = False

    @property
    def pattern(self) -> re.Pattern[str]:
        return _compile(self.name)

    def matches(self, name: str) -> bool:
        return self.pattern.fullmatch(name) is not None


def _compile(name: str) -> re.Pattern[str]:
    regex = re.escape(name)
    for placeholder, alternatives in _PLACEHOLDERS.items():
        regex = regex.replace(re.escape(placeholder), f"(?:{alternatives})")
    return re.compile(regex)


def _m(name: str, unit: str, definition: str, *, fact: bool = False, locust: bool = False,
       chaos: tuple[Scope, ...] | None = None, locust_needs_faults: bool = False,
       sim: bool = True) -> Metric:
    """A registry entry: the simulator observes its metrics at every allowed scope; the
    Locust client the client-side ones at the same scopes, and so does the chaos load,
    whose windows are the same window facts (unless ``chaos`` says otherwise: ``()`` for
    none, or the scopes)."""
    scopes = _FACT if fact else SCOPES
    runners: dict[Runner, tuple[Scope, ...]] = {"sim": scopes} if sim else {}
    if chaos is None:
        chaos = scopes if locust else ()
    if chaos:
        runners["chaos"] = chaos
    if locust:
        runners["locust"] = scopes
    return Metric(name, unit, definition, scopes, runners, locust_needs_faults)


_REQUESTS = [
    _m("requests", "count", "Client requests that ended in the scope's windows.", locust=True),
    _m("latency_p50", "s", "Median end-to-end latency of successful client requests "
       "(retries included; 2% log bins, within ±1%); NaN (a check fails) without a success.",
       locust=True),
    _m("latency_p95", "s", "95th percentile of the same latencies.", locust=True),
    _m("latency_p99", "s", "99th percentile of the same latencies.", locust=True),
    _m("latency_mean", "s", "Exact mean of the same latencies.", locust=True),
    *[_m(f"latency_all_{q}", "s", f"The {q} of every client request's latency, failed ones "
         "included with the time they took.", locust=True) for q in ("p50", "p95", "p99")],
    _m("latency_all_mean", "s", "Exact mean latency of every client request, failed ones "
       "included.", locust=True),
    _m("error_rate", "fraction", "Share of client requests whose final outcome was an error.",
       locust=True),
    _m("availability", "fraction", "Share of client requests that succeeded.", locust=True),
    _m("throughput", "1/s", "Successful requests per second.", locust=True),
    _m("request_rate", "1/s", "Requests per second.", locust=True),
    _m("errors.<cause>", "fraction", "Share of requests that ended with that cause.",
       locust=True),
    _m("failed_requests", "count", "Client requests whose final outcome was an error.",
       locust=True),
    _m("slo_window_compliance", "fraction", "Share of windows meeting the SLO (error rate "
       "and success P95 both within it; a window without a success does not).", locust=True),
    _m("retry_amplification", "ratio", "Client attempts per request (1.0 without retries).",
       locust=True),
]
_TENANTS = [
    _m("tenant.<tenant>.requests", "count", "The tenant's client requests.", locust=True),
    *[_m(f"tenant.<tenant>.latency_{q}", "s", f"The tenant's success latency {q}.",
         locust=True) for q in ("p50", "p95", "p99", "mean")],
    _m("tenant.<tenant>.error_rate", "fraction", "The tenant's error rate.", locust=True),
    _m("tenant.<tenant>.rate_limited", "count", "Provider 429s on the tenant's calls."),
    _m("tenant.<tenant>.connector_seconds", "s", "Connector worker-seconds the tenant held "
       "(provider calls and Retry-After waits)."),
    _m("tenant.<tenant>.connector_share", "fraction", "The tenant's share of all connector "
       "worker-seconds held."),
    _m("tenants_except.<tenant>.requests", "count", "Requests of every tenant but <tenant> "
       "(the victims of a noisy <tenant>).", locust=True),
    _m("tenants_except.<tenant>.error_rate", "fraction", "Their error rate (scoped by their "
       "own recovery).", locust=True),
    _m("tenants_except.<tenant>.latency_p95", "s", "Their success P95 latency (scoped by "
       "their own recovery).", locust=True),
    _m("tenants_except.<tenant>.rto_seconds", "s", "rto_seconds judged on their traffic "
       "alone.", fact=True, locust=True, chaos=_FACT, locust_needs_faults=True),
]
_RECOVERY = [
    _m("rto_seconds", "s", "From the first fault's start to the start of the first window "
       "from which the SLO holds for slo.sustain, counted from the fault on (window-granular; "
       "null: not recovered).",
       fact=True, locust=True, chaos=_FACT, locust_needs_faults=True),
    _m("rpo_seconds", "s", "Metadata lost when the PostgreSQL primary's zone or region was "
       "lost (replication lag, or time since the last snapshot).", fact=True, chaos=_FACT),
]
_TIERS = [
    # The stand-in's engine and connector pools report their slot-seconds (chaos.counters).
    *[_m(f"{tier}.utilization", "fraction", "Busy server-time over available server-time "
         "(the stand-in: worker slot-seconds held over slot-seconds available).",
         chaos=SCOPES) for tier in ("engine", "connector", "control_plane")],
    _m("<tier>.utilization", "fraction", "Busy server-time over available server-time."),
    _m("<tier>.queue_wait_mean", "s", "Mean wait in queue over jobs started."),
    _m("<tier>.wait_probability", "fraction", "Share of jobs that waited."),
    _m("<tier>.throughput", "1/s", "Jobs started per second."),
    _m("<tier>.rejected", "count", "Jobs refused by a full queue."),
    _m("<tier>.dropped", "count", "Queued jobs skipped because their client had timed out."),
    _m("<tier>.wait_p95", "s", "95th percentile of the queue wait over jobs started "
       "(with run.wait_histograms)."),
    _m("<tier>.wait_p99", "s", "99th percentile of the queue wait over jobs started "
       "(with run.wait_histograms)."),
    _m("<tier>.p_wait_over_<x>", "fraction", "P(wait > x) over jobs started, x from "
       "run.wait_over (with run.wait_histograms)."),
]
_COUNTERS = [
    _m("cache.hit_ratio", "fraction", "Cache hits over lookups.", locust=True),
    *[_m(f"cache.{n}", "count", d) for n, d in (
        ("hits", "Cache lookups that hit."), ("misses", "Cache lookups that missed."),
        ("evictions", "Keys evicted by a full cache."),
        ("stale_served", "Hits served stale under soft caching."),
        ("coalesced", "Misses that waited for a fetch already in flight."),
        ("refreshes", "Background refreshes (stale or XFetch)."),
        ("early_refreshes", "Refreshes started early by XFetch."))],
    *[_m(f"connector.{n}", "count", d) for n, d in (
        ("calls", "Provider calls."), ("timeouts", "Connector calls that timed out."),
        ("fetches", "Fetches handed to the connectors."))],
    # The stand-in's connectors count them per tenant; chaos reads them per window.
    *[_m(f"connector.{n}", "count", d, chaos=SCOPES) for n, d in (
        ("rate_limited", "Provider 429s."), ("unauthorized", "Provider 401s."))],
    _m("connector.calls_per_key", "ratio", "Provider calls per distinct key fetched."),
    _m("connector.fetches_per_key", "ratio", "Fetches per distinct key fetched (called or not)."),
    # The real runners' clients retry as the scenario's does (labcore.retries) and count it.
    _m("client.retries", "count", "Client retries.", locust=True),
    _m("client.retries_denied", "count", "Retries refused by the retry budget.", locust=True),
    *[_m(n, "count", d) for n, d in (
        ("client.wasted", "Attempts abandoned by their client."),
        ("engine.wasted", "Engine work whose client had gone."),
        ("gateway.capped", "Requests refused by a per-user concurrency cap."))],
    _m("outlier.ejections", "count", "Zones ejected by outlier detection "
       "(with topology.gateway.outlier_detection)."),
    _m("users.abandoned", "count", "Queries closed-loop users gave up waiting for "
       "(with a tenant's closed_loop.patience)."),
    _m("loadgen.late", "count", "Requests the load client sent behind schedule.", locust=True,
       chaos=(), sim=False),
    _m("loadgen.bad_request", "count", "Requests the target refused as malformed (a load "
       "generator bug).", locust=True, chaos=(), sim=False),
]
#: Incident metrics the chaos load's own windows give (its faults' real start and end),
#: with the stand-in's connector counters read per window (chaosomnisql.counters).
_CLIENT_INCIDENT = ("error_rate", "latency_p95", "connector.fetches_per_key",
                    "connector.rate_limited")
_INCIDENT = [
    _m(f"incident.{n}", unit, f"{n} over the incident: the fault windows and the SLO "
       "breach runs from the first fault (or breach) on, or run.incident.", fact=True,
       chaos=_FACT if n in _CLIENT_INCIDENT else ())
    for n, unit in (("error_rate", "fraction"), ("latency_p95", "s"),
                    ("connector.calls", "count"), ("connector.rate_limited", "count"),
                    ("connector.calls_per_key", "ratio"),
                    ("connector.fetches_per_key", "ratio"), ("cache.hit_ratio", "fraction"))
] + [
    _m("incident.connector.fetches_per_key_peak", "ratio", "The highest per-window "
       "connector.fetches_per_key over the incident's windows: a herd at its worst, not "
       "diluted by how long the SLO breach after it lasts.", fact=True, chaos=_FACT),
    _m("incident.start", "s", "When the incident's first window starts.", fact=True),
    _m("incident.seconds", "s", "How long the incident's windows last in all.", fact=True),
]
_MITIGATIONS = [
    # The stand-in's paced bulk refresh reports its own (chaosomnisql.token_refresh).
    _m("mitigation.token_refresh.in_effect_seconds", "s", "From the bulk token refresh's "
       "start (the operator's delay after the revocation) to its last token renewed.",
       fact=True, chaos=_FACT),
    _m("mitigation.<kind>.at", "s", "When the first mitigation of that kind was applied.",
       fact=True),
    _m("mitigation.<kind>.in_effect_seconds", "s", "How long it took to be fully in effect.",
       fact=True),
    _m("mitigation.recovery_seconds", "s", "From the first mitigation applied during the "
       "incident to recovery.", fact=True),
    _m("token_refresh.tokens", "count", "Tokens the bulk refresh job renewed.", fact=True,
       chaos=_FACT),
]
#: What the chaos runner reads off the target's own canary analysis (its decision, when,
#: and the attempts exposed until then: chaosomnisql.canary).
_CHAOS_CANARY = ("rolled_back", "promoted", "decision_seconds", "exposed_requests",
                 "exposed_failures")
_RELEASES = [
    *[_m(f"canary.{n}", unit, d, fact=True, chaos=_FACT if n in _CHAOS_CANARY else ())
      for n, unit, d in (
        ("rolled_back", "bool", "1 if the analysis rolled the new version back."),
        ("promoted", "bool", "1 if the analysis promoted the new version to 100%."),
        ("decision_seconds", "s", "From the deployment to the decision (null: undecided)."),
        ("exposed_requests", "count", "Attempts served by the new version before the "
         "decision."),
        ("exposed_failures", "count", "Those of them that failed."),
        ("windows", "count", "Analysis windows run."),
        ("inconclusive_windows", "count", "Windows with too few canary attempts."),
        ("window_error_se", "fraction", "Median standard error of the canary-minus-baseline "
         "error rate over the first step's windows."),
        ("latency_p95", "s", "The canary's worst P95 over judged windows."),
        ("latency_p99", "s", "The canary's worst P99 over judged windows."))],
    # The stand-in's gateway measures the cutover it acts out (labcore.cutover): chaos
    # reads it, and Locust when it replayed the release (--inject-faults).
    *[_m(f"cutover.{n}", unit, d, fact=True, chaos=_FACT, locust=True,
         locust_needs_faults=True) for n, unit, d in (
        ("inflight_at_switch", "count", "Attempts in flight when traffic switched to green."),
        ("dropped_requests", "count", "Attempts still running when blue was torn down."),
        ("drain_seconds", "s", "How long blue took to drain (null: not within the timeout)."))],
    # The stand-in's snapshot schedule reports the interval it runs with (issue 18).
    *[_m(f"failover.{n}", unit, d, fact=True,
         chaos=_FACT if n == "rpo_bound_seconds" else ()) for n, unit, d in (
        ("detection_seconds", "s", "From the region's loss to the page."),
        ("decision_seconds", "s", "From the page to the decision to fail over."),
        ("spinup_seconds", "s", "Bringing the data plane up in the secondary region."),
        ("switch_seconds", "s", "From the loss to the secondary being up."),
        ("shifted_seconds", "s", "From the loss to the end of the DNS shift."),
        ("missing_dependencies", "count", "Dependencies not replicated."),
        ("rpo_bound_seconds", "s", "Worst case of a snapshot or log-shipping scheme: its "
         "interval (the stand-in: the interval its snapshot schedule runs with), not a "
         "measurement of one run."))],
]

#: Every metric, in documentation order.
METRICS: tuple[Metric, ...] = (*_REQUESTS, *_TENANTS, *_RECOVERY, *_TIERS, *_COUNTERS,
                               *_INCIDENT, *_MITIGATIONS, *_RELEASES)
_EXACT = {m.name: m for m in METRICS if "<" not in m.name}
_PATTERNS = [m for m in METRICS if "<" in m.name]


def metric_key(metric: str, scope: str = "run") -> str:
    """The one name of ``metric`` over ``scope``: ``metric`` for ``run``, else
    ``metric@scope`` (``latency_p95@outside_recovery``)."""
    return metric if scope == "run" else f"{metric}@{scope}"


def split_key(key: str) -> tuple[str, str]:
    """The inverse of :func:`metric_key`: ``(metric, scope)``."""
    metric, _, scope = key.partition("@")
    return metric, scope or "run"


def lookup(name: str) -> Metric | None:
    """The registry entry of a concrete metric name, or None if the lab has no such metric."""
    exact = _EXACT.get(name)
    if exact is not None:
        return exact
    return next((m for m in _PATTERNS if m.matches(name)), None)


def _concrete(tenants: Iterable[str]) -> list[str]:
    names = []
    for m in METRICS:
        if "<tenant>" in m.name:
            names += [m.name.replace("<tenant>", t) for t in tenants] or [m.name]
        elif "<cause>" in m.name:
            names += [m.name.replace("<cause>", c) for c in OUTCOMES[1:]]
        elif "<tier>" in m.name:
            names += [m.name.replace("<tier>", t) for t in TIERS]
        else:
            names.append(m.name)
    return names


def suggest(name: str, tenants: Iterable[str] = (), n: int = 3) -> list[str]:
    """The nearest valid metric names (the scenario's tenants filled in), for error messages."""
    return difflib.get_close_matches(name, _concrete(tenants), n=n, cutoff=0.5)


def not_observed_reason(metric: str, scope: str, runner: Runner,
                        faults_applied: bool = True) -> str | None:
    """Why ``runner`` cannot observe ``metric`` over ``scope`` (None: it can)."""
    entry = lookup(metric)
    if entry is None:
        return f"unknown metric {metric!r}"
    if runner not in entry.runners:
        return f"{runner} cannot observe {metric}"
    if scope not in entry.runners[runner]:
        return f"{runner} observes {metric} only over {', '.join(entry.runners[runner])}"
    if runner == "locust" and entry.locust_needs_faults and not faults_applied:
        return "the fault timeline was not run against the target"
    return None


def problem(metric: str, scope: str, runner: Runner | None = None,
            tenants: Iterable[str] = ()) -> str | None:
    """What is wrong with a check on ``metric`` over ``scope`` (None: nothing): an unknown
    metric or scope (with the nearest valid names), a scope the metric does not allow, or,
    with ``runner``, a metric that runner can never observe over that scope."""
    entry = lookup(metric)
    if entry is None:
        near = suggest(metric, tenants)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        return f"unknown metric {metric!r}{hint} (the registry: labcore/registry.py)"
    if scope not in SCOPES:
        near = difflib.get_close_matches(scope, SCOPES, n=2, cutoff=0.5)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        return f"unknown scope {scope!r}{hint} (scopes are {', '.join(SCOPES)})"
    if scope not in entry.scopes:
        return f"{metric} is a whole-run fact: it has no scope {scope!r} (use over: run)"
    if runner is not None and runner not in entry.runners:
        able = ", ".join(entry.runners)
        return f"the {runner} runner cannot observe {metric} (observed by: {able})"
    if runner is not None and scope not in entry.runners[runner]:
        return (f"the {runner} runner observes {metric} only over "
                f"{', '.join(entry.runners[runner])}, not {scope}")
    return None


def markdown_table() -> str:
    """The registry as the docs' metric table: name, unit, scopes, runners, definition."""
    rows = ["| metric | unit | scopes | observed by | definition |",
            "| --- | --- | --- | --- | --- |"]
    for m in METRICS:
        scopes = "all" if m.scopes == SCOPES else ", ".join(m.scopes)
        runners = ", ".join(r + ("*" if r == "locust" and m.locust_needs_faults else "")
                            for r in m.runners)
        rows.append(f"| `{m.name}` | {m.unit} | {scopes} | {runners} | {m.definition} |")
    return "\n".join(rows)
