"""Facts of the client's requests, per window, in the simulator's own format.

Locust's statistics round percentiles to about two significant digits and keep one
response-time dict per name; the SLO gate needs per-tenant, per-window latencies with
a known error. So every request is also recorded here, at its completion time (as the
simulator records it), in the simulator's log bins (2% wide: any percentile within ±1%),
with its outcome mapped to the lab's outcomes. :meth:`ClientRecorder.window_facts` turns
the windows into :class:`labcore.facts.RunFacts` (the window-facts format the simulator's
recorder writes too), so that :mod:`labcore.metrics` computes the load test's metrics with
exactly the code that computes the simulator's.

Workers ship their windows to the master as plain dicts (:meth:`drain`, :meth:`merge`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from labcore.facts import OUTCOMES, FaultMark, RunFacts, bin_index, empty_arrays
from labcore.scenario import Scenario

__all__ = ["OBSERVED_COUNTERS", "ClientRecorder", "classify", "fault_marks"]

_OUTCOME = {name: i for i, name in enumerate(OUTCOMES)}
#: Counters the recorder keeps besides outcomes: cache results from the response body,
#: late sends (the client fell behind its schedule) and malformed requests (a bug here).
OBSERVED_COUNTERS = ("cache.hits", "cache.misses", "loadgen.late", "loadgen.bad_request")

# Error codes of the gateway (docs/sandbox.md) → the simulator's outcomes.
_CODES = {
    "CONCURRENCY_CAP": "capped",
    "RATE_LIMIT_EXHAUSTED": "rate_limited",
    "UNAUTHORIZED": "unauthorized",
    "PROVIDER_UNAUTHORIZED": "unauthorized",
    "PROVIDER_ERROR": "provider_error",
    "NO_HEALTHY_AZ": "unavailable",
    "ENGINE_UNAVAILABLE": "unavailable",  # issue 18: a scenario's stand-in, a dead zone
    "OVERLOADED": "overload",  # issue 18: a full worker-slot queue
    "UPSTREAM_TIMEOUT": "timeout",
    "INTERNAL": "unavailable",
}


def classify(status: int, code: str | None = None) -> str:
    """The simulator outcome of an HTTP answer (status 0: no answer, the connection failed).

    4xx answers the sandbox does not list under a fault (400, 403, 404, 413) mean the load
    generator is wrong; they count as ``unavailable`` errors and in ``loadgen.bad_request``.
    """
    if status == 200:
        return "ok"
    if code in _CODES:
        return _CODES[code]
    if status == 429:
        return "rate_limited"
    if status in (401, 403) and code is None:
        return "unauthorized"
    if status == 504:
        return "timeout"
    return "unavailable"


class _Window:
    """One window: successes per tenant, failures of every tenant together (as
    :mod:`labcore.facts` keeps them)."""

    __slots__ = ("counters", "fail_hist", "fail_latency_sum", "hist", "latency_sum", "outcomes")

    def __init__(self, n_tenants: int) -> None:
        self.hist: list[dict[int, int]] = [defaultdict(int) for _ in range(n_tenants)]
        self.outcomes = [[0] * len(OUTCOMES) for _ in range(n_tenants)]
        self.latency_sum = [0.0] * n_tenants
        self.fail_hist: dict[int, int] = defaultdict(int)
        self.fail_latency_sum = 0.0
        self.counters: dict[str, int] = defaultdict(int)


class ClientRecorder:
    """Per-window aggregates of requests as seen by the client (sparse histograms)."""

    def __init__(self, tenants: tuple[str, ...], window: float) -> None:
        self.tenants, self.window = tenants, window
        self.index = {name: i for i, name in enumerate(tenants)}
        self.windows: dict[int, _Window] = {}

    def _at(self, t: float) -> _Window:
        k = max(0, int(t // self.window))
        w = self.windows.get(k)
        if w is None:
            w = self.windows[k] = _Window(len(self.tenants))
        return w

    def request(self, t: float, tenant: str, latency: float, outcome: str) -> None:
        """A request completed at run time ``t`` after ``latency`` seconds."""
        w, i, k = self._at(t), self.index[tenant], _OUTCOME[outcome]
        if k:
            w.fail_hist[bin_index(latency)] += 1
            w.fail_latency_sum += latency
        else:
            w.hist[i][bin_index(latency)] += 1
            w.latency_sum[i] += latency
        w.outcomes[i][k] += 1

    def count(self, t: float, name: str, n: int = 1) -> None:
        self._at(t).counters[name] += n

    # -- shipping between processes -----------------------------------------------------

    def drain(self) -> dict[str, Any]:
        """The windows as plain data (JSON/msgpack-safe), leaving the recorder empty."""
        data = {
            str(k): {
                "hist": [{str(b): n for b, n in h.items()} for h in w.hist],
                "outcomes": w.outcomes,
                "latency_sum": w.latency_sum,
                "fail_hist": {str(b): n for b, n in w.fail_hist.items()},
                "fail_latency_sum": w.fail_latency_sum,
                "counters": dict(w.counters),
            }
            for k, w in self.windows.items()
        }
        self.windows = {}
        return data

    def merge(self, data: Mapping[str, Any]) -> None:
        """Add windows drained by another recorder (a worker's) to this one."""
        for key, src in data.items():
            w = self._at(int(key) * self.window)
            for i in range(len(self.tenants)):
                for b, n in src["hist"][i].items():
                    w.hist[i][int(b)] += n
                w.outcomes[i] = [a + b for a, b in zip(w.outcomes[i], src["outcomes"][i])]
                w.latency_sum[i] += src["latency_sum"][i]
            for b, n in src["fail_hist"].items():
                w.fail_hist[int(b)] += n
            w.fail_latency_sum += src["fail_latency_sum"]
            for name, n in src["counters"].items():
                w.counters[name] += n

    # -- into the lab's metrics --------------------------------------------------------

    def arrays(self, n_windows: int) -> dict[str, Any]:
        """The first ``n_windows`` windows as :mod:`labcore.facts` arrays (no tiers: a
        client sees none)."""
        names = sorted(set(OBSERVED_COUNTERS)
                       | {c for w in self.windows.values() for c in w.counters})
        out = empty_arrays(n_windows, len(self.tenants), names, self.window)
        for k, w in self.windows.items():
            if k >= n_windows:
                continue  # completed after the scenario's end (stragglers)
            for i in range(len(self.tenants)):
                for b, n in w.hist[i].items():
                    out["hist"][k, i, b] += n
                out["outcomes"][k, i] = w.outcomes[i]
                out["latency_sum"][k, i] = w.latency_sum[i]
            for b, n in w.fail_hist.items():
                out["fail_hist"][k, b] += n
            out["fail_latency_sum"][k] = w.fail_latency_sum
            out["counters"][k] = [w.counters.get(c, 0) for c in names]
        return out

    def window_facts(self, scenario: Scenario, elapsed: float, seed: int = 0) -> RunFacts:
        """The window facts of the windows that fit in ``elapsed`` seconds of run."""
        span = min(elapsed, scenario.run.duration)
        n_windows = max(0, math.floor(span / self.window + 1e-9))
        return RunFacts(scenario=scenario, seed=seed, arrays=self.arrays(n_windows),
                        marks=fault_marks(scenario, span), tenants=self.tenants)


def fault_marks(scenario: Scenario, until: float) -> tuple[FaultMark, ...]:
    """The scenario's fault timeline as the simulator marks it (faults starting before
    ``until``); the load test runs (or has someone run) the faults on this schedule."""
    marks = []
    for fault in scenario.faults:
        if fault.at >= until:
            continue
        duration = getattr(fault, "duration", None)
        end = fault.at + duration if duration is not None else None
        detail = fault.kind.replace("_", " ")
        marks.append(FaultMark(fault.kind, fault.at, end, detail))
    return tuple(marks)
