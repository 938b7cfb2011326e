"""A small built-in background load: the scenario's tenants, rates and query mix, bounded.

Stands in for the Locust load (``loadtests/``) so experiments do not depend on it. Open
loop: Poisson arrivals per tenant at ``rate × workload.scale × factor``, each request a
``SELECT`` on one of the tenant's ``connector.object`` targets with a Zipf-distributed
key (the scenario's ``cache.keys``/``zipf_s``), sent by a thread pool over one httpx
client. It stops by itself after ``seconds`` or ``max_requests``, whichever first, and
only ever talks to an allowlisted gateway (checked by the caller).

Open loop means every request leaves at its scheduled time, however slow the answers: the
pool is sized by Little's law for the longest a request can take (every attempt timing
out, plus the backoffs), threads being made only when needed. A request that still leaves
more than a second behind its schedule is counted (``loadgen.late``), as Locust's load
does, and one still waiting when the load's time is over is not sent at all (counted as
late, never as an answer): a load can never outlive its ``seconds`` by more than the
answers in flight, whatever the pool's size. (A pool of 16 threads once turned a 4-minute
flood at 20 req/s, answered in about 2.7 s, into a backlog sent at 6 req/s: it was still
sending when the 11-minute run ended.)

Every answer is also recorded, at its completion time on the run's clock, in a
:class:`loadtests.recorder.ClientRecorder` when one is given: the window facts from which
the chaos verdict computes its metrics with the simulator's code (:mod:`.windows`). The
client gives up after the scenario's ``topology.gateway.timeout`` (``plan.timeout``), as
the simulator's client does; a request it gave up on counts as a ``timeout`` that took
that long. It retries a whole query as the scenario's ``topology.gateway.retries`` says
(attempts, outcomes, backoff, budget: :mod:`labcore.retries`, the simulator's own), and
records the request once, with its final outcome and the time from its first attempt,
plus the ``client.requests``/``attempts``/``retries``/``retries_denied`` counters.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from labcore.retries import ClientRetries, PolicyPush, Tried, attempt, longest_request
from labcore.scenario import Retries
from labcore.workload import key_sql, mix_cdf, pick, zipf_cdf
from loadtests.recorder import classify

__all__ = ["LATE", "MAX_WORKERS", "BackgroundLoad", "LoadPlan", "Recording", "TenantLoad",
           "plan_from_scenario", "pool_size"]

#: A request sent more than this many seconds behind its schedule counts as late
#: (``loadgen.late``, as in the Locust load).
LATE = 1.0
#: The largest pool: a bound on threads (each idle one costs only its stack).
MAX_WORKERS = 512


class Recording(Protocol):
    """Where answers are recorded (:class:`.windows.RunWindows`, thread-safe): a
    :class:`loadtests.recorder.ClientRecorder`'s ``request`` and ``count``."""

    def request(self, t: float, tenant: str, latency: float, outcome: str) -> None: ...
    def count(self, t: float, name: str, n: int = 1) -> None: ...


@dataclass(frozen=True)
class TenantLoad:
    """One tenant's open-loop load: requests per second over weighted targets."""

    tenant: str
    rate: float
    users: int
    mix: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class LoadPlan:
    """What to send, for how long and at most how many requests."""

    tenants: tuple[TenantLoad, ...]
    seconds: float
    max_requests: int
    keys: int = 500
    zipf_s: float = 1.1
    seed: int = 1
    #: The client's timeout per request (the scenario's ``topology.gateway.timeout``).
    timeout: float = 5.0
    #: The client's retries (the scenario's ``topology.gateway.retries``); None: one attempt.
    retries: Retries | None = None

    @property
    def total_rate(self) -> float:
        return sum(t.rate for t in self.tenants)


def plan_from_scenario(
    scenario: Any, seconds: float, max_requests: int, factor: float = 1.0,
    tenants: tuple[str, ...] | None = None,
) -> LoadPlan:
    """The scenario's workload (scaled by ``workload.scale``, times ``factor``) as a plan."""
    work = scenario.workload
    loads = tuple(
        TenantLoad(name, t.rate * work.scale * factor, t.users, tuple(t.mix.items()))
        for name, t in work.tenants.items()
        if tenants is None or name in tenants
    )
    cache = scenario.topology.cache
    return LoadPlan(loads, float(seconds), int(max_requests), int(cache.keys),
                    float(cache.zipf_s), int(scenario.run.seed),
                    float(scenario.topology.gateway.timeout), scenario.topology.gateway.retries)


@dataclass
class LoadReport:
    """What the load sent and got back, by status (``"error"`` for transport errors)."""

    sent: int = 0
    by_status: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        ok = self.by_status.get("200", 0)
        return {"sent": self.sent, "ok": ok, "by_status": dict(self.by_status)}


class BackgroundLoad:
    """Runs a :class:`LoadPlan` against ``gateway_url`` in background threads; records
    each answer in ``recorder`` (if given) at ``time.monotonic() - origin``."""

    def __init__(self, plan: LoadPlan, gateway_url: str, keys: dict[str, str],
                 workers: int | None = None, transport: httpx.BaseTransport | None = None,
                 recorder: Recording | None = None, origin: float = 0.0,
                 pushes: Sequence[PolicyPush] = ()) -> None:
        missing = [t.tenant for t in plan.tenants if t.tenant not in keys]
        if missing:
            raise ValueError(f"no API key for tenants {missing}")
        self.plan, self.url = plan, gateway_url.rstrip("/") + "/v1/query"
        self._keys = keys
        self._stop = threading.Event()
        self._start = time.monotonic()  # the schedule's start (reset when it starts)
        self._lock = threading.Lock()
        self.report = LoadReport()
        self.recorder, self.origin = recorder, origin
        self.retries = ClientRetries(plan.retries, random.Random(plan.seed))
        #: The scenario's client config pushes (retry_policy), at run times since ``origin``.
        self._pushes = sorted(pushes, key=lambda p: p.at)
        workers = workers or pool_size(plan)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="omnisql-load")
        # As many connections as threads: httpx's default pool (100) would hold the rest
        # waiting for a connection until their timeout, a shortfall no one sent.
        self._client = httpx.Client(timeout=plan.timeout, transport=transport,
                                    limits=httpx.Limits(max_connections=workers,
                                                        max_keepalive_connections=workers))
        self._thread = threading.Thread(target=self._schedule, name="omnisql-load", daemon=True)

    def start(self) -> BackgroundLoad:
        self._thread.start()
        return self

    def wait(self, timeout: float = 20.0) -> LoadReport:
        """Let the load end by its own bounds: every scheduled request is sent and answered.

        Unlike :meth:`stop`, nothing queued is cancelled. Returns the report.
        """
        self._thread.join(timeout)
        if self._thread.is_alive():
            return self.stop()
        self._pool.shutdown(wait=True)
        self._client.close()
        return self.report

    def stop(self, timeout: float = 20.0) -> LoadReport:
        """Stop sending now: queued requests are cancelled, those in flight finish; the report."""
        self._stop.set()
        self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()
        return self.report

    def _schedule(self) -> None:
        rng, zipf = random.Random(self.plan.seed), zipf_cdf(self.plan.keys, self.plan.zipf_s)
        arrivals = [(rng.expovariate(t.rate), t) for t in self.plan.tenants if t.rate > 0]
        start = self._start = time.monotonic()
        for _ in range(self.plan.max_requests):
            if not arrivals:
                return
            at, tenant = min(arrivals, key=lambda a: a[0])
            if at > self.plan.seconds or self._stop.wait(max(0.0, start + at - time.monotonic())):
                return
            arrivals.remove((at, tenant))
            while self._pushes and time.monotonic() - self.origin >= self._pushes[0].at:
                self.retries.push(self._pushes.pop(0))  # before the requests sent after it
            arrivals.append((at + rng.expovariate(tenant.rate), tenant))
            self._submit(tenant, pick(zipf, rng.random()), rng, start + at)

    def _submit(self, tenant: TenantLoad, key: int, rng: random.Random, due: float) -> None:
        targets, weights = zip(*tenant.mix)
        target = targets[pick(mix_cdf(weights), rng.random())]
        user = f"u{rng.randrange(tenant.users) % 5 + 1}"  # the sandbox knows users u1..u5
        try:
            self._pool.submit(self._send, tenant.tenant, user, key_sql(target, key), due)
        except RuntimeError:  # stop() shut the pool down between our wait and this submit
            return

    def _send(self, tenant: str, user: str, sql: str, due: float) -> None:
        """One request: attempts until an answer the policy does not retry, or none left.
        Not sent when the load's time is over (``due`` is the schedule's send time)."""
        now = time.monotonic()
        if now - due > LATE:
            self._count("loadgen.late", now)
            if now > self._start + self.plan.seconds:
                return  # a backlog past the load's end: never sent
        with self._lock:
            self.report.sent += 1
        headers = {"Authorization": f"Bearer {self._keys[tenant]}", "X-OmniSQL-User": user}
        start = time.monotonic()
        tried = attempt(lambda: self._attempt(headers, sql), _outcome, self.retries,
                        self._stop.wait)
        self._record(tenant, start, time.monotonic(), tried)

    def _attempt(self, headers: dict[str, str], sql: str) -> tuple[str, str | None, Any]:
        """One attempt: status (``"error"``: no answer), error code, cache result."""
        try:
            response = self._client.post(self.url, json={"sql": sql}, headers=headers)
        except httpx.TimeoutException:
            return "error", "UPSTREAM_TIMEOUT", None  # the client's timeout
        except httpx.HTTPError:
            return "error", None, None
        body = _body(response)
        code = None if response.status_code == 200 else _error_code(body)
        return str(response.status_code), code, body.get("cache")

    def _count(self, name: str, when: float) -> None:
        if self.recorder is not None:
            with self._lock:
                self.recorder.count(when - self.origin, name)

    def _record(self, tenant: str, start: float, end: float, tried: Tried[Any]) -> None:
        status, _, cache = tried.answer
        with self._lock:
            self.report.by_status[status] += 1
            if self.recorder is None:
                return
            t = end - self.origin
            self.recorder.request(t, tenant, end - start, tried.outcome)
            for name, n in (("client.requests", 1), ("client.attempts", tried.attempts),
                            ("client.retries", tried.retries),
                            ("client.retries_denied", tried.denied)):
                self.recorder.count(t, name, n)
            if status == "200" and cache is not None:
                hit = cache in ("hit", "stale")
                self.recorder.count(t, "cache.hits" if hit else "cache.misses")


def pool_size(plan: LoadPlan) -> int:
    """Threads for an open loop (Little's law): the plan's rate times the longest a request
    can take (each attempt timing out, plus the largest backoffs), at least 8, at most
    :data:`MAX_WORKERS`. The pool makes threads only as requests need them."""
    longest = longest_request(plan.timeout, plan.retries)
    return max(8, min(MAX_WORKERS, math.ceil(plan.total_rate * longest)))


def _outcome(answer: tuple[str, str | None, Any]) -> str:
    """The lab's outcome of one attempt's ``(status, error code, cache)``."""
    status, code, _ = answer
    return classify(0 if status == "error" else int(status), code)


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json() if response.content else {}
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _error_code(body: dict[str, Any]) -> str | None:
    """The gateway's error code (``{"error": {"code": ...}}``) of a failed answer."""
    error = body.get("error")
    return error.get("code") if isinstance(error, dict) else None
