"""Metrics: from a run's per-window aggregates to named numbers and a time series.

Every metric is in seconds, fractions, counts or per-second rates, computed over the
measured windows (those starting at or after ``run.warmup``):

``latency_p50``/``latency_p95``/``latency_p99``
    End-to-end latency percentiles of successful client requests, from the first attempt
    to the answer (retries included). From 2% log bins: within ±1%. Failed requests are
    not in them: they count in the error rate (a fail-fast error answered in 0.1 ms must
    not make an outage look fast). With no successful request the percentiles are
    undefined (NaN), and a check on them fails.
``latency_mean``
    Exact mean of the same latencies.
``latency_all_p50``/``latency_all_p95``/``latency_all_p99``/``latency_all_mean``
    The same over every client request, failed ones included with the time they took (a
    timed-out request with the timeout): what a client waited, whatever the answer.
    Whole-system only (failures are kept per window, not per tenant).
``error_rate`` / ``availability``
    Fraction of client requests whose final outcome was an error / a success.
``throughput``
    Successful requests per second. ``request_rate``: requests per second.
``errors.<cause>``
    Fraction of requests that ended with that cause (timeout, rate_limited,
    unauthorized, unavailable, overload, provider_error, capped).
``retry_amplification``
    Attempts per request (1.0 without retries).
``slo_window_compliance``
    Fraction of windows meeting the SLO: some requests, the error rate within it, and the
    P95 of successful requests within it. A window whose requests all failed has no P95
    and does not meet the SLO: it cannot pass on latency.
``rto_seconds``
    Recovery time of the first fault: from its start to the start of the first window
    from which every window meets the SLO for ``slo.sustain`` without a break. It is
    window-granular (one ``run.window``), 0 if no window missed the SLO, and ``None``
    (JSON null) if the run ended before such a stretch: not recovered. When the fault
    starts inside a window, that window's stretch must hold the SLO for ``slo.sustain``
    from the fault on: the quiet part of the window before the fault is not recovery.
``rpo_seconds``
    Metadata lost when a zone holding the PostgreSQL primary was lost: the replication
    lag at that moment (the worst loss if several). ``None`` if unbounded.
``<tier>.utilization`` / ``<tier>.queue_wait_mean`` / ``<tier>.wait_probability`` /
``<tier>.throughput`` / ``<tier>.rejected`` / ``<tier>.dropped``
    For tier ``gateway``, ``engine``, ``connector`` (and ``control_plane`` when the
    topology has one): busy server-time over available
    server-time, mean wait in queue over jobs started, fraction of jobs that waited,
    jobs started per second, jobs refused by a full queue, queued jobs skipped because
    their client had already timed out (``drop_expired``).
``<tier>.wait_p95`` / ``<tier>.wait_p99`` / ``<tier>.p_wait_over_<x>``
    Only with ``run.wait_histograms: true``: quantiles of the queue wait of jobs started
    (jobs that did not wait count as 0), and the fraction of started jobs that waited
    longer than each ``x`` of ``run.wait_over`` (``engine.p_wait_over_1s``,
    ``engine.p_wait_over_250ms``). From the 2% log bins, interpolated log-uniformly
    within a bin.
``outlier.ejections`` / ``users.abandoned``
    Only with outlier detection / closed-loop tenants: zones ejected, and queries whose
    user stopped waiting (``patience``).
``cache.hit_ratio``, ``connector.calls``, ``connector.rate_limited`` (provider 429s),
``connector.unauthorized`` (provider 401s), ``connector.timeouts``, ``client.retries``...
    Counts over the measured windows (``cache.hit_ratio`` a fraction).
``tenant.<name>.error_rate`` / ``.latency_p95`` / ``.requests`` / ``.rate_limited``
    The same per tenant: what identifies a noisy tenant and its victims.

Releases and failovers (:mod:`sim.model.release`, :mod:`sim.model.region`) add
whole-run facts, the same whatever the scope:

``canary.rolled_back`` / ``canary.promoted``
    1 if the analysis rolled the new version back / promoted it to 100%, else 0 (both 0:
    no decision by the end of the run). Their mean over replications is the rollback
    (promotion) rate: the false-rollback rate of a good version, one minus the
    missed-detection rate of a bad one.
``canary.decision_seconds``
    From the deployment to the decision; ``None`` if undecided.
``canary.exposed_requests`` / ``canary.exposed_failures``
    Attempts served by the new version before the decision, and how many of them failed.
``canary.windows`` / ``canary.inconclusive_windows``
    Analysis windows run, and those with fewer than ``min_samples`` canary attempts.
``canary.window_error_se``
    Median over the first step's windows of the standard error of the canary-minus-
    baseline error rate: the per-window noise to read next to the threshold (0.5 points).
``canary.latency_p95`` / ``canary.latency_p99``
    The canary's worst P95 and P99 over judged windows (attempt latencies).
``cutover.inflight_at_switch`` / ``cutover.dropped_requests`` / ``cutover.drain_seconds``
    Blue-green: attempts in flight when traffic switched to green, those still running
    when blue was torn down (they fail), and how long blue took to drain (``None`` if it
    did not drain within ``drain_timeout``).
``failover.detection_seconds`` / ``.decision_seconds`` / ``.spinup_seconds``
    Regional failover: the timeline's drawn steps. ``failover.switch_seconds``: from the
    region's loss to the secondary being up; ``failover.shifted_seconds``: to the end of
    the DNS shift; ``failover.missing_dependencies``: dependencies not replicated;
    ``failover.rpo_bound_seconds``: the worst case of a snapshot or log-shipping scheme
    (its interval; absent for asynchronous streaming).
    ``rto_seconds`` and ``rpo_seconds`` above cover the region loss too (RPO from async
    lag, or the time since the last snapshot / log shipment).

Runbooks (issue 3: noisy tenants, stampedes, auth failures and their mitigations):

``failed_requests``
    Client requests whose final outcome was an error (a count).
``tenant.<name>.connector_seconds`` / ``.connector_share``
    Connector worker-seconds the tenant held (provider calls and Retry-After waits) and
    its share of all held time: with ``.rate_limited``, the dashboard that names the
    noisy tenant (SOP-101 step 1; the report's "top tenants" table).
``tenants_except.<name>.error_rate`` / ``.latency_p95`` / ``.requests`` / ``.rto_seconds``
    Every tenant but ``<name>`` taken together: the victims of a noisy ``<name>``. A
    check names the noisy tenant in the metric, e.g. ``tenants_except.globex.error_rate``.
    ``.rto_seconds`` is ``rto_seconds`` judged on their traffic alone (the noisy
    tenant's own capped or refused requests do not hold it back), and the check scopes
    ``outside_recovery`` / ``after_recovery`` use that recovery for these metrics.
``connector.fetches`` / ``connector.fetches_per_key`` / ``connector.calls_per_key``
    Fetches handed to the connectors (a fetch makes one provider call, more after 429s),
    and fetches and provider calls per distinct key fetched, keys counted per window
    (one fetch per key in a window is 1.0; a thundering herd on hot keys pushes it up;
    calls also count the re-calls after 429s).
``cache.hits`` / ``cache.misses`` / ``cache.evictions`` / ``cache.stale_served`` /
``cache.coalesced`` / ``cache.refreshes`` / ``cache.early_refreshes``
    Lookups that hit and missed; keys evicted by a full cache; hits served stale under
    soft caching; misses that
    waited for a fetch already in flight; background refreshes (stale or XFetch) and
    those started early by XFetch.
``incident.<metric>``
    ``error_rate``, ``latency_p95``, ``connector.calls``, ``connector.rate_limited``,
    ``connector.calls_per_key``, ``connector.fetches_per_key``, ``cache.hit_ratio`` over
    the incident (``connector.fetches_per_key_peak``: the highest of its windows'
    fetches per key, the herd at its worst whatever the incident's length), independent
    of scope and of how the load is written: the windows
    overlapping the faults (from the first fault's start to the last one's end; a fault
    without duration, such as a cache flush, covers one window) united with the windows
    after warm-up that breach the SLO, from the first fault on (without faults: from the
    first breach), each breach run extended until the SLO is met again; a breach run
    that starts after the SLO was met again outside the faults is not part of it.
    ``run.incident: {start: 4m, end: 14m}`` sets it explicitly. A run with no fault, no
    breach and no ``run.incident`` has no incident and no ``incident.*`` metrics.
``incident.start`` / ``incident.seconds``
    When the incident's first window starts, and how long its windows last in all.
``mitigation.<kind>.at`` / ``mitigation.<kind>.in_effect_seconds``
    When a mitigation was applied, and how long it took to be fully in effect (cache
    nodes provisioned, every token refreshed); 0 for immediate actions. The first of a
    kind if several.
``mitigation.recovery_seconds``
    From the first mitigation applied at or after the first fault's start (or from the
    fault's start, for mitigations on from the beginning) to recovery as for
    ``rto_seconds`` (``None`` if not recovered by the end of the run).
``token_refresh.tokens``
    Tokens the bulk refresh job renewed (``mitigation.token_refresh.in_effect_seconds``
    is its duration: tokens over the endpoint's rate, plus any secret rotation).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from .facts import BIN_GROWTH, BIN_MIN, N_BINS, OUTCOMES, TIER_FIELDS, WindowFacts, bin_value
from .scenario.checks import Scope
from .window_hist import WindowHist

__all__ = [
    "Estimate",
    "Recovery",
    "Scope",
    "aggregate",
    "compute_metrics",
    "incident_windows",
    "percentile",
    "recovery",
    "sustain_windows",
    "sustained_from",
    "window_table",
    "wait_quantile",
    "wait_tail",
    "wait_label",
]

_F = {name: i for i, name in enumerate(TIER_FIELDS)}


def percentile(hist: np.ndarray, q: float) -> float:
    """The ``q`` quantile (0–1) of a latency histogram over bins; NaN if empty."""
    total = hist.sum()
    if total == 0:
        return math.nan
    index = int(np.searchsorted(np.cumsum(hist), q * total, side="left"))
    return float(bin_value(index))


class Recovery:
    """When the first fault started, and when (if ever) the SLO held again for good."""

    def __init__(self, fault_start: float | None, recovered_at: float | None) -> None:
        self.fault_start, self.recovered_at = fault_start, recovered_at

    @property
    def rto(self) -> float | None:
        if self.fault_start is None or self.recovered_at is None:
            return None
        return max(0.0, self.recovered_at - self.fault_start)


def _window_slo(result: WindowFacts, tenants: list[int] | None = None,
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per window: error rate, P95, and whether the SLO held (for ``tenants``: all)."""
    a = result.arrays
    outcomes = a["outcomes"] if tenants is None else a["outcomes"][:, tenants]
    chosen = None if tenants is None else np.asarray(tenants)
    p95 = _window_percentiles(WindowHist.of(a["hist"]), (0.95,), chosen)[0]
    return _slo_rule(result, outcomes.sum(axis=1), p95)


def _slo_rule(result: WindowFacts, outcomes: np.ndarray, p95: np.ndarray,
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Error rate, P95 and the SLO verdict of windows' outcome counts and P95s (of
    successes only)."""
    slo = result.scenario.slo
    total = outcomes.sum(axis=1)
    errors = total - outcomes[:, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        error_rate = np.where(total > 0, errors / np.maximum(total, 1), np.nan)
    # No success, no P95 (NaN): such a window never meets the SLO on latency.
    meets = ((total > 0) & (outcomes[:, 0] > 0) & (error_rate <= slo.error_rate)
             & (p95 <= slo.latency_p95))
    return error_rate, p95, meets


@functools.cache
def _bin_values() -> np.ndarray:
    """Each bin's value, from scalar calls: the very floats :func:`percentile` returns."""
    return np.array([float(bin_value(i)) for i in range(N_BINS)])


def _percentiles(hist: np.ndarray, q: float) -> np.ndarray:
    """:func:`percentile` of each row of ``hist`` at once (the same values, NaN if empty)."""
    cum = np.cumsum(hist, axis=1)
    total = cum[:, -1]
    index = (cum < (q * total)[:, None]).sum(axis=1)  # = searchsorted(side="left") per row
    return np.where(total == 0, np.nan, _bin_values()[np.minimum(index, N_BINS - 1)])


def _window_percentiles(hist: WindowHist, qs: Sequence[float],
                        tenants: np.ndarray | None = None) -> np.ndarray:
    """Per window, the ``qs`` quantiles of its histogram summed over ``tenants`` (all if
    None), densified a block of windows at a time: shape ``(len(qs), window)``."""
    out = np.empty((len(qs), hist.n_windows))
    for block in hist.blocks():
        sums = hist.window_sums(block, tenants)
        for i, q in enumerate(qs):
            out[i, block] = _percentiles(sums, q)
    return out


def sustain_windows(sustain: float, window: float) -> int:
    """How many consecutive windows make ``sustain`` seconds of SLO (at least one)."""
    return max(1, math.ceil(sustain / window - 1e-9))


def sustained_from(meets: Sequence[bool] | np.ndarray, need: int, first: int = 0) -> int | None:
    """The RTO rule: the first window (from ``first`` on) that starts ``need`` consecutive
    windows all meeting the SLO; None if the windows end before such a stretch. The one
    implementation: the simulator's :func:`recovery` and the chaos extension's recovery
    measurement both call it."""
    meets = np.asarray(meets, dtype=bool)
    for i in range(first, len(meets) - need + 1):
        if meets[i : i + need].all():
            return i
    return None


def recovery(result: WindowFacts, tenants: list[int] | None = None,
             meets: np.ndarray | None = None) -> Recovery:
    """Find the RTO of the first fault (see the module docstring), for ``tenants``' traffic
    only if given, or from the windows' SLO verdicts ``meets`` if given."""
    if not result.marks:
        return Recovery(None, None)
    fault = min(mark.start for mark in result.marks)
    start = result.arrays["start"]
    window = result.scenario.run.window
    if meets is None:
        _, _, meets = _window_slo(result, tenants)
    sustain = result.scenario.slo.sustain
    need = sustain_windows(sustain, window)
    first = int(np.searchsorted(start + window, fault, side="right"))  # window holding fault
    index: int | None = first
    if first < len(meets) and start[first] < fault:
        # The window holding the fault began before it: its good part before the fault is
        # not recovery. A stretch from it must hold the SLO for ``sustain`` from the fault on.
        lead = sustain_windows(sustain + (fault - float(start[first])), window)
        if sustained_from(meets[first : first + lead], lead) is None:
            index = sustained_from(meets, need, first + 1)
    else:
        index = sustained_from(meets, need, first)
    return Recovery(fault, None if index is None else max(float(start[index]), fault))


def _scope_mask(result: WindowFacts, scope: Scope, rec: Recovery) -> np.ndarray:
    start = result.arrays["start"]
    end = start + result.scenario.run.window
    measured = start >= result.scenario.run.warmup - 1e-9
    if scope == "run" or rec.fault_start is None:
        return measured
    before = end <= rec.fault_start + 1e-9
    if scope == "before_fault":
        return measured & before
    after = start >= rec.recovered_at - 1e-9 if rec.recovered_at is not None else start > np.inf
    if scope == "after_recovery":
        return measured & after
    return measured & (before | after)


def _counts(array: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Integer counts (window, tenant, ...) summed over the windows of ``mask`` and every
    tenant, one window at a time: no copy of the selected windows (exact in any order)."""
    total = np.zeros(array.shape[2:], dtype=array.dtype)
    for w in np.flatnonzero(mask):
        total += array[w].sum(axis=0)
    return total


def compute_metrics(result: WindowFacts, scope: Scope = "run") -> dict[str, float | None]:
    """Every metric of one run over the windows of ``scope``."""
    a = result.arrays
    hist = WindowHist.of(a["hist"])
    rec = recovery(result)
    mask = _scope_mask(result, scope, rec)
    seconds = float(mask.sum()) * result.scenario.run.window
    metrics: dict[str, float | None] = {}
    _request_metrics(metrics, "", hist.total(mask),
                     _counts(a["outcomes"], mask), a["latency_sum"][mask].sum(), seconds)
    _all_outcome_metrics(metrics, a, mask)
    counters = dict(zip(a["counter_names"], a["counters"][mask].sum(axis=0).tolist()))
    _counter_metrics(metrics, counters, result.tenants)
    _tier_metrics(metrics, a["tier_names"], a["tiers"][mask].sum(axis=0), seconds)
    for t, name in enumerate(result.tenants):
        _request_metrics(metrics, f"tenant.{name}.", hist.total(mask, tenant=t),
                         a["outcomes"][mask, t].sum(axis=0), a["latency_sum"][mask, t].sum(),
                         seconds)
        metrics[f"tenant.{name}.rate_limited"] = float(
            counters.get(f"connector.rate_limited[{name}]", 0)
        )
    _, _, meets = _window_slo(result)
    metrics["slo_window_compliance"] = float(meets[mask].mean()) if mask.any() else math.nan
    if rec.fault_start is not None:
        metrics["rto_seconds"] = rec.rto
    if result.rpo_losses:
        worst = max(loss for _, loss in result.rpo_losses)
        metrics["rpo_seconds"] = None if math.isinf(worst) else worst
    metrics.update(result.facts)  # releases and failovers: whole-run facts, not windowed
    _runbook_metrics(metrics, result, scope, mask, counters, rec)
    if "tier_wait_hist" in a:  # issue 14: opt-in per-tier wait distributions
        _wait_tail_metrics(metrics, a, mask, result.scenario.run.wait_over)
    for name in ("outlier.ejections", "users.abandoned"):  # issue 14: only when opted in
        if name in a["counter_names"]:
            metrics[name] = float(counters.get(name, 0))
    return metrics


def _runbook_metrics(out: dict, result: WindowFacts, scope: Scope, mask: np.ndarray,
                     counters: dict[str, int], rec: Recovery) -> None:
    """Noisy tenants, stampedes and mitigations (see the module docstring)."""
    tenants = result.tenants
    out["failed_requests"] = out["requests"] * out["error_rate"] if out["requests"] else 0.0
    held = {t: counters.get(f"connector.held_ms[{t}]", 0) / 1000.0 for t in tenants}
    total_held = sum(held.values())
    others = _others_metrics(result, scope, rec) if len(tenants) > 1 else {}
    for t, name in enumerate(tenants):
        out[f"tenant.{name}.connector_seconds"] = held[name]
        out[f"tenant.{name}.connector_share"] = held[name] / total_held if total_held else 0.0
        out.update(others.get(t, {}))
    _runbook_counters(out, result, counters, rec)


def _others_metrics(result: WindowFacts, scope: Scope, rec: Recovery) -> dict[int, dict]:
    """``tenants_except.<t>.*`` of each tenant ``t``. Every tenant but ``t``, per window,
    is all tenants minus ``t``'s own counts (integers: exact), so this costs no more with
    many tenants. The all-tenant counts are summed a block of windows at a time and
    never held for the whole run, so the memory does not grow with its length either:
    one pass for each tenant's window P95s (hence their recovery and measured windows),
    one for everyone's counts in those windows (once per distinct set of windows)."""
    a, hist = result.arrays, WindowHist.of(result.arrays["hist"])
    p95 = np.empty((hist.n_tenants, hist.n_windows))
    for block in hist.blocks():
        everyone = hist.window_sums(block)
        for t in range(hist.n_tenants):
            p95[t, block] = _percentiles(everyone - hist.tenant(t, block), 0.95)
    everyone_outcomes = a["outcomes"].sum(axis=1)
    own = np.zeros((hist.n_tenants, hist.n_windows), dtype=bool)
    found = []
    for t in range(hist.n_tenants):
        outcomes = everyone_outcomes - a["outcomes"][:, t]
        theirs = recovery(result, meets=_slo_rule(result, outcomes, p95[t])[2])
        own[t] = _scope_mask(result, scope, theirs)  # their recovery, not the noisy one's
        counts = outcomes[own[t]].sum(axis=0)
        found.append((counts, theirs.rto))
    masks, which = np.unique(own, axis=0, return_inverse=True)
    which = which.ravel()  # one mask index per tenant
    latency = np.zeros((len(masks), hist.n_bins), dtype=np.int64)  # everyone's, per mask
    for block in hist.blocks():
        latency += masks[:, block].astype(np.int64) @ hist.window_sums(block)
    out: dict[int, dict] = {}
    for t, (counts, rto) in enumerate(found):
        total = int(counts.sum())
        prefix = f"tenants_except.{result.tenants[t]}."
        theirs_hist = latency[which[t]] - hist.total(own[t], t)
        out[t] = {prefix + "requests": float(total),
                  prefix + "error_rate": (total - int(counts[0])) / total if total else math.nan,
                  prefix + "latency_p95": percentile(theirs_hist, 0.95)}
        if rec.fault_start is not None:
            out[t][prefix + "rto_seconds"] = rto
    return out


def _runbook_counters(out: dict, result: WindowFacts, counters: dict[str, int],
                      rec: Recovery) -> None:
    """Stampede counters, the incident and the mitigations."""
    out["connector.calls_per_key"] = _per_key(counters)
    out["connector.fetches"] = float(counters.get("connector.fetches", 0))
    out["connector.fetches_per_key"] = _per_key(counters, "connector.fetches")
    for name in ("hits", "misses", "evictions", "stale_served", "coalesced", "refreshes",
                 "early_refreshes"):
        out[f"cache.{name}"] = float(counters.get(f"cache.{name}", 0))
    _incident_metrics(out, result)
    _mitigation_metrics(out, result, rec)


def _per_key(counters: dict[str, int], name: str = "connector.calls") -> float:
    keys = counters.get("connector.keys", 0)
    return counters.get(name, 0) / keys if keys else math.nan


def _fault_windows(result: WindowFacts) -> np.ndarray:
    """The windows overlapping a fault (a fault without duration covers one window)."""
    start, window = result.arrays["start"], result.scenario.run.window
    if not result.marks:
        return np.zeros(len(start), dtype=bool)
    first = min(m.start for m in result.marks)
    last = max(m.start + window if m.end is None or m.end <= m.start else m.end
               for m in result.marks)
    if any(m.end is None and m.kind != "cache_flush" for m in result.marks):
        last = math.inf  # a fault that never ends: the incident lasts the run
    return np.asarray((start + window > first + 1e-9) & (start < last - 1e-9))


def incident_windows(result: WindowFacts) -> np.ndarray | None:
    """The incident's windows (see ``incident.<metric>`` above); ``None`` if there is none.

    The fault windows united with the SLO-breaching measured windows from the first
    fault (or, without faults, the first breach) on that follow a window already in the
    incident, so each breach run lasts until the SLO is met again: so a surge
    written as a fault or as a profile step, or a flush whose damage outlasts its
    window, gives the same incident. ``run.incident`` overrides it.
    """
    start, run = result.arrays["start"], result.scenario.run
    if run.incident is not None:
        return np.asarray((start + run.window > run.incident.start + 1e-9)
                          & (start < run.incident.end - 1e-9))
    faults = _fault_windows(result)
    _, _, meets = _window_slo(result)
    breach = ~meets & (start >= run.warmup - 1e-9)
    seeds = faults if faults.any() else breach
    if not seeds.any():
        return None
    first = int(np.argmax(seeds))
    inside = faults.copy()
    for i in range(first, len(start)):  # a breach run joins the incident it touches
        inside[i] |= bool(breach[i]) and (i == first or bool(inside[i - 1]))
    return inside


def _incident_metrics(out: dict, result: WindowFacts) -> None:
    mask = incident_windows(result)
    if mask is None:
        return
    a = result.arrays
    outcomes = _counts(a["outcomes"], mask)
    total = int(outcomes.sum())
    out["incident.error_rate"] = (total - int(outcomes[0])) / total if total else math.nan
    out["incident.latency_p95"] = percentile(WindowHist.of(a["hist"]).total(mask), 0.95)
    counters = dict(zip(a["counter_names"], a["counters"][mask].sum(axis=0).tolist()))
    out["incident.connector.calls"] = float(counters.get("connector.calls", 0))
    out["incident.connector.rate_limited"] = float(
        sum(counters.get(f"connector.rate_limited[{t}]", 0) for t in result.tenants))
    out["incident.connector.calls_per_key"] = _per_key(counters)
    out["incident.connector.fetches_per_key"] = _per_key(counters, "connector.fetches")
    out["incident.connector.fetches_per_key_peak"] = _peak_per_key(a, mask)
    hits, misses = counters.get("cache.hits", 0), counters.get("cache.misses", 0)
    out["incident.cache.hit_ratio"] = hits / (hits + misses) if hits + misses else math.nan
    start = a["start"][mask]
    out["incident.start"] = float(start.min())
    out["incident.seconds"] = float(mask.sum()) * result.scenario.run.window


def _peak_per_key(a: dict[str, Any], mask: np.ndarray) -> float:
    """The highest per-window fetches per key over ``mask``'s windows (NaN without keys):
    a herd's worst window, not diluted by how long the incident lasts."""
    names = list(a["counter_names"])
    if "connector.keys" not in names or "connector.fetches" not in names:
        return math.nan
    counters = a["counters"][mask]
    keys = counters[:, names.index("connector.keys")]
    fetches = counters[:, names.index("connector.fetches")]
    some = keys > 0
    return float((fetches[some] / keys[some]).max()) if some.any() else math.nan


def _mitigation_metrics(out: dict, result: WindowFacts, rec: Recovery) -> None:
    log = result.logs.get("mitigations") or []
    for entry in reversed(log):  # the first of a kind wins
        out[f"mitigation.{entry['kind']}.at"] = entry["start"]
        out[f"mitigation.{entry['kind']}.in_effect_seconds"] = entry["end"] - entry["start"]
        if "tokens" in entry:
            out["token_refresh.tokens"] = float(entry["tokens"])
    if not log or rec.fault_start is None:
        return
    applied = [e["start"] for e in log if e["start"] >= rec.fault_start]
    since = min(applied) if applied else rec.fault_start
    out["mitigation.recovery_seconds"] = (
        None if rec.recovered_at is None else max(0.0, rec.recovered_at - since))


def _request_metrics(out: dict, prefix: str, hist: np.ndarray, outcomes: np.ndarray,
                     latency_sum: float, seconds: float) -> None:
    total = int(outcomes.sum())
    ok = int(outcomes[0])
    out[f"{prefix}requests"] = float(total)
    out[f"{prefix}latency_p50"] = percentile(hist, 0.50)
    out[f"{prefix}latency_p95"] = percentile(hist, 0.95)
    out[f"{prefix}latency_p99"] = percentile(hist, 0.99)
    out[f"{prefix}latency_mean"] = latency_sum / ok if ok else math.nan
    out[f"{prefix}error_rate"] = (total - ok) / total if total else math.nan
    if prefix:
        return
    out["availability"] = ok / total if total else math.nan
    out["throughput"] = ok / seconds if seconds else math.nan
    out["request_rate"] = total / seconds if seconds else math.nan
    for i, cause in enumerate(OUTCOMES[1:], start=1):
        out[f"errors.{cause}"] = int(outcomes[i]) / total if total else math.nan


def _all_outcome_metrics(out: dict, a: dict[str, Any], mask: np.ndarray) -> None:
    """``latency_all_*``: every request, failed ones included (successes' and failures'
    histograms added)."""
    hist = WindowHist.of(a["hist"]).total(mask) + WindowHist.of(a["fail_hist"]).total(mask)
    total = int(a["outcomes"][mask].sum())
    for q in (50, 95, 99):
        out[f"latency_all_p{q}"] = percentile(hist, q / 100)
    latency = float(a["latency_sum"][mask].sum()) + float(a["fail_latency_sum"][mask].sum())
    out["latency_all_mean"] = latency / total if total else math.nan


def _counter_metrics(out: dict, counters: dict[str, int], tenants: Iterable[str]) -> None:
    hits, misses = counters.get("cache.hits", 0), counters.get("cache.misses", 0)
    out["cache.hit_ratio"] = hits / (hits + misses) if hits + misses else math.nan
    requests = counters.get("client.requests", 0)
    attempts = counters.get("client.attempts", 0)
    out["retry_amplification"] = attempts / requests if requests else math.nan
    for name in ("client.retries", "client.retries_denied", "client.wasted", "engine.wasted",
                 "connector.calls", "connector.timeouts", "gateway.capped"):
        out[name] = float(counters.get(name, 0))
    for name in ("rate_limited", "unauthorized"):
        out[f"connector.{name}"] = float(
            sum(counters.get(f"connector.{name}[{t}]", 0) for t in tenants)
        )


def _tier_metrics(out: dict, names: list[str], tiers: np.ndarray, seconds: float) -> None:
    for name, row in zip(names, tiers):
        started, capacity = row[_F["started"]], row[_F["capacity_area"]]
        if capacity == 0 and started == 0:
            continue  # the tier is bypassed in this scenario
        out[f"{name}.utilization"] = row[_F["busy_area"]] / capacity if capacity else math.nan
        out[f"{name}.queue_wait_mean"] = row[_F["wait_sum"]] / started if started else math.nan
        out[f"{name}.wait_probability"] = row[_F["waited"]] / started if started else math.nan
        out[f"{name}.throughput"] = started / seconds if seconds else math.nan
        out[f"{name}.rejected"] = float(row[_F["rejected"]])
        out[f"{name}.dropped"] = float(row[_F["dropped"]])


def window_table(result: WindowFacts, replication: int = 0) -> pd.DataFrame:
    """One row per window: the time series behind the plots (``timeseries.csv``)."""
    a, window = result.arrays, result.scenario.run.window
    outcomes = a["outcomes"].sum(axis=1)
    total = outcomes.sum(axis=1)
    error_rate, p95, meets = _window_slo(result)
    p50, p99 = _window_percentiles(WindowHist.of(a["hist"]), (0.50, 0.99))
    frame: dict[str, Any] = {
        "replication": replication,
        "time": a["start"],
        "measured": a["start"] >= result.scenario.run.warmup - 1e-9,
        "requests": total,
        "throughput": outcomes[:, 0] / window,
        "error_rate": error_rate,
        "latency_p50": p50,
        "latency_p95": p95,
        "latency_p99": p99,
        "meets_slo": meets,
    }
    for i, cause in enumerate(OUTCOMES[1:], start=1):
        frame[f"errors.{cause}"] = outcomes[:, i]
    counters = pd.DataFrame(a["counters"], columns=a["counter_names"])
    hits = counters.get("cache.hits", pd.Series(0, index=counters.index))
    misses = counters.get("cache.misses", pd.Series(0, index=counters.index))
    frame["cache.hit_ratio"] = (hits / (hits + misses).where(hits + misses > 0)).to_numpy()
    for name in ("rate_limited", "unauthorized"):
        cols = [c for c in counters.columns if c.startswith(f"connector.{name}[")]
        frame[f"connector.{name}"] = counters[cols].sum(axis=1).to_numpy() if cols else 0
    for col in ("client.retries", "connector.calls"):
        frame[col] = counters[col].to_numpy() if col in counters else 0
    for t, name in enumerate(a["tier_names"]):
        row = a["tiers"][:, t, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            frame[f"{name}.utilization"] = row[:, _F["busy_area"]] / row[:, _F["capacity_area"]]
            frame[f"{name}.queue_wait_mean"] = row[:, _F["wait_sum"]] / row[:, _F["started"]]
    _workers_columns(frame, result)  # issue 14: autoscaled pools only
    for t, name in enumerate(result.tenants):
        tenant_total = a["outcomes"][:, t].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            frame[f"tenant.{name}.error_rate"] = (
                (tenant_total - a["outcomes"][:, t, 0]) / tenant_total
            )
    return pd.DataFrame(frame)


class Estimate:
    """A metric across replications: mean and 95% Student-t confidence interval.

    With one replication (or identical values) the interval collapses to the mean, or is
    ``None`` with one replication. If any replication has no value (an RTO never
    reached, an unbounded RPO), the estimate has none either: a mean over the runs that
    recovered would flatter the system.
    """

    __slots__ = ("mean", "ci_low", "ci_high", "n")

    def __init__(self, values: list[float | None]) -> None:
        self.n = len(values)
        self.mean: float | None
        self.ci_low: float | None
        self.ci_high: float | None
        clean = [v for v in values if v is not None and not math.isnan(v)]
        if len(clean) < len(values) or not clean:
            self.mean = self.ci_low = self.ci_high = None
            return
        arr = np.asarray(clean, dtype=float)
        mean = float(arr.mean())
        self.mean = mean
        if len(arr) < 2:
            self.ci_low = self.ci_high = None
            return
        from scipy.stats import t as student_t

        half = float(student_t.ppf(0.975, len(arr) - 1) * arr.std(ddof=1) / math.sqrt(len(arr)))
        self.ci_low = mean - half
        self.ci_high = mean + half

    def as_dict(self) -> dict[str, float | None]:
        return {"mean": self.mean, "ci_low": self.ci_low, "ci_high": self.ci_high}

    def __repr__(self) -> str:
        return f"Estimate(mean={self.mean!r}, ci=({self.ci_low!r}, {self.ci_high!r}), n={self.n})"


def aggregate(runs: list[dict[str, float | None]]) -> dict[str, Estimate]:
    """Per metric, the :class:`Estimate` over replications (metrics every run has)."""
    names = [name for name in runs[0] if all(name in run for run in runs)]
    return {name: Estimate([run[name] for run in runs]) for name in names}


# --------------------------------------------------------------------------- issue 14: wait tails


def _workers_columns(frame: dict[str, Any], result: WindowFacts) -> None:
    """``<tier>.workers``: mean workers serving (all zones) per window, for the tiers with
    autoscaling (absent otherwise, so other scenarios' tables are unchanged)."""
    a, topo = result.arrays, result.scenario.topology
    scaled = {"engine": topo.engine.autoscaling, "connector": topo.connectors.autoscaling}
    for t, name in enumerate(a["tier_names"]):
        if scaled.get(name) is not None:
            area = a["tiers"][:, t, _F["capacity_area"]]
            frame[f"{name}.workers"] = area / result.scenario.run.window

_LOG_GROWTH = math.log(BIN_GROWTH)


def wait_label(seconds: float) -> str:
    """The ``x`` of ``p_wait_over_<x>``: ``1.0`` → ``1s``, ``0.25`` → ``250ms``."""
    if seconds >= 1.0 and float(seconds).is_integer():
        return f"{int(seconds)}s"
    ms = seconds * 1000.0
    if abs(ms - round(ms)) < 1e-9:
        return f"{int(round(ms))}ms"
    return f"{seconds:g}s".replace(".", "_")


def _bin_position(x: float) -> float:
    """Where ``x`` (> 0) falls on the bin axis: bin ``k`` spans ``[k, k + 1)``."""
    if x <= BIN_MIN * BIN_GROWTH:  # bin 0 holds (0, BIN_MIN·g): linear inside it
        return x / (BIN_MIN * BIN_GROWTH)
    return math.log(x / BIN_MIN) / _LOG_GROWTH


def wait_tail(hist: np.ndarray, started: float, x: float) -> float:
    """P(wait > ``x``) over ``started`` jobs, given the histogram of positive waits; a
    bin's waits are taken as log-uniform within it (the bins are 2% wide)."""
    if started <= 0:
        return math.nan
    position = _bin_position(x)
    k = int(position)
    if k >= len(hist):
        return 0.0
    above = float(hist[k + 1:].sum()) + float(hist[k]) * (k + 1 - position)
    return above / started


def wait_quantile(hist: np.ndarray, started: float, q: float) -> float:
    """The ``q`` quantile of the wait of ``started`` jobs (those not in ``hist`` waited 0)."""
    if started <= 0:
        return math.nan
    rank = q * started - (started - float(hist.sum()))  # rank among the positive waits
    if rank <= 0:
        return 0.0
    cum = np.cumsum(hist)
    k = int(np.searchsorted(cum, rank, side="left"))
    if k >= len(hist):
        k = len(hist) - 1
    before = float(cum[k - 1]) if k else 0.0
    position = k + (rank - before) / float(hist[k])
    if position <= 1.0:
        return position * BIN_MIN * BIN_GROWTH
    return BIN_MIN * BIN_GROWTH ** position


def _wait_tail_metrics(out: dict, a: dict[str, Any], mask: np.ndarray,
                       thresholds: Iterable[float]) -> None:
    hists = a["tier_wait_hist"][mask].sum(axis=0)
    started = a["tiers"][mask].sum(axis=0)[:, _F["started"]]
    for name, hist, n in zip(a["tier_names"], hists, started):
        if f"{name}.utilization" not in out:
            continue  # the tier is bypassed in this scenario
        out[f"{name}.wait_p95"] = wait_quantile(hist, n, 0.95)
        out[f"{name}.wait_p99"] = wait_quantile(hist, n, 0.99)
        for x in thresholds:
            out[f"{name}.p_wait_over_{wait_label(x)}"] = wait_tail(hist, n, x)
