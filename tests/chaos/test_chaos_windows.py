"""The chaos run's windows are the lab's window facts, judged with the simulator's code.

Hand-built windows (no sandbox, no network): what the chaos verdict judges equals
``labcore.metrics.compute_metrics`` on the same facts, the P95 over several tenants is the
pooled one (not the worst tenant's), and the load records what it got back.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from chaosomnisql.ledger import FaultRecord
from chaosomnisql.load import BackgroundLoad, LoadPlan, TenantLoad
from chaosomnisql.verdict import judge_checks, measured, verdict
from chaosomnisql.windows import RunWindows, measured_metrics

from labcore.checks import judge
from labcore.facts import load_facts
from labcore.metrics import compute_metrics
from labcore.registry import metric_key
from sim import read_scenario

FLOOD = read_scenario("scenarios/rate_limit_flood.yaml", profile="standin").scenario
W = 4.0  # seconds per window, as in short mode


def _fill(windows: RunWindows, start: int, stop: int, tenant: str, n: int, latency: float,
          outcome: str = "ok") -> None:
    """``n`` answers per window for windows ``start``..``stop - 1``, mid-window."""
    for k in range(start, stop):
        for _ in range(n):
            windows.request(k * W + W / 2, tenant, latency, outcome)


def _flood_run() -> tuple[RunWindows, list[FaultRecord]]:
    """12 windows; umbrella floods from 16 s (window 4) to 36 s; the victims breach the
    SLO in windows 4-5 (errors) and meet it from window 6 on. acme answers fast, globex
    is slower but rare, so the worst tenant's P95 is far above the pooled P95."""
    windows = RunWindows(FLOOD, window=W, warmup=8.0, sustain=8.0, origin=1000.0)
    _fill(windows, 0, 12, "acme", 100, 0.1)
    _fill(windows, 0, 12, "globex", 4, 2.0)   # 4 of 104 victims' answers: < 5%
    _fill(windows, 0, 12, "initech", 1, 0.1)
    _fill(windows, 4, 6, "acme", 10, 0.1, "unavailable")
    _fill(windows, 4, 9, "umbrella", 50, 0.05, "rate_limited")
    flood = FaultRecord("traffic_surge", "umbrella", started_at=1016.0, wall_started=0.0,
                        restored_at=1036.0)
    return windows, [flood]


def _journal(facts_measured: dict, probes: dict | None = None) -> dict:
    run = [{"activity": {"name": "measure_traffic", "provider": {"func": "measure_traffic",
                                                                 "arguments": {}}},
            "status": "succeeded", "output": {"measured": probes}}] if probes else []
    return {"status": "completed", "deviated": False, "run": run, "rollbacks": [],
            "steady_states": {"before": {"steady_state_met": True}},
            "omnisql_windows": {"measured": facts_measured}}


def test_the_chaos_verdict_and_compute_metrics_agree_on_the_same_facts() -> None:
    windows, faults = _flood_run()
    facts = windows.facts(faults, elapsed=48.0)
    assert facts is not None and len(facts.arrays["start"]) == 12
    assert [(m.kind, m.start, m.end) for m in facts.marks] == [("traffic_surge", 16.0, 36.0)]
    got = measured_metrics(facts, FLOOD.checks)
    for check in FLOOD.checks:
        expected = compute_metrics(facts, check.over)[check.metric]
        assert got[metric_key(check.metric, check.over)] == pytest.approx(expected)
    # The victims breach in windows 4-5 and hold the SLO from window 6 (24 s) for 8 s.
    assert got["tenants_except.umbrella.rto_seconds"] == pytest.approx(24.0 - 16.0)
    assert got["tenants_except.umbrella.error_rate@outside_recovery"] == 0.0
    # The verdict judges exactly those values, each over its own scope.
    judged = judge_checks(_journal(got), FLOOD.checks)
    direct = judge(FLOOD.checks, {metric_key(c.metric, c.over): compute_metrics(facts, c.over)
                                  [c.metric] for c in FLOOD.checks}, "chaos")
    assert [(r.name, r.observed, r.passed) for r in judged.results] == [
        (r.name, pytest.approx(r.observed), r.passed) for r in direct.results]
    assert len(judged.results) == 3 and not judged.not_measured
    assert verdict(_journal(got), FLOOD.checks) == []


def test_the_p95_over_tenants_is_pooled_not_the_worst_tenants() -> None:
    windows, faults = _flood_run()
    facts = windows.facts(faults, elapsed=48.0)
    assert facts is not None
    got = measured_metrics(facts, FLOOD.checks)
    pooled = got["tenants_except.umbrella.latency_p95@outside_recovery"]
    worst = compute_metrics(facts, "outside_recovery")["tenant.globex.latency_p95"]
    assert pooled == pytest.approx(0.1, rel=0.02)  # 2% log bins
    assert worst == pytest.approx(2.0, rel=0.02)
    # The window facts win over the stand-in's stats probe (which took the worst tenant's).
    journal = _journal(got, {"tenants_except.umbrella.latency_p95": worst})
    assert measured(journal)["tenants_except.umbrella.latency_p95@outside_recovery"] == pooled
    assert measured(journal)["tenants_except.umbrella.latency_p95"] == worst  # run: probe's


def test_a_victim_breach_fails_the_verdict_through_the_same_rule() -> None:
    windows, faults = _flood_run()
    _fill(windows, 6, 12, "globex", 10, 0.1, "unavailable")  # never recovers
    facts = windows.facts(faults, elapsed=48.0)
    assert facts is not None
    got = measured_metrics(facts, FLOOD.checks)
    assert got["tenants_except.umbrella.rto_seconds"] is None
    assert compute_metrics(facts)["tenants_except.umbrella.rto_seconds"] is None
    reasons = verdict(_journal(got), FLOOD.checks)
    assert any("tenants_except.umbrella.rto_seconds = None" in r for r in reasons)


def test_facts_npz_reads_back_to_the_same_metrics(tmp_path) -> None:
    windows, faults = _flood_run()
    facts = windows.facts(faults, rpo_seconds=1.5, elapsed=48.0)
    assert facts is not None and facts.rpo_losses == ((16.0, 1.5),)
    path = windows.save(facts, tmp_path / "results")
    back = load_facts(path, facts.scenario)
    assert back.scenario.run.window == W and back.marks == facts.marks
    a, b = compute_metrics(facts, "outside_recovery"), compute_metrics(back, "outside_recovery")
    assert a.keys() == b.keys()
    assert all(a[k] == b[k] or (a[k] != a[k] and b[k] != b[k]) for k in a)  # NaN == NaN
    assert b["rpo_seconds"] == 1.5


def test_too_short_a_run_has_no_window_facts() -> None:
    windows = RunWindows(FLOOD, window=W, warmup=8.0, sustain=8.0, origin=0.0)
    assert windows.facts([], elapsed=11.0) is None


def test_the_load_records_each_answer_with_the_lab_outcome_and_the_scenario_timeout() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        key = request.headers["Authorization"]
        if key == "Bearer slow":
            raise httpx.ReadTimeout("timed out", request=request)
        if key == "Bearer limited":
            return httpx.Response(429, json={"error": {"code": "RATE_LIMIT_EXHAUSTED"}})
        return httpx.Response(200, json={"rows": [], "cache": "hit"})

    windows = RunWindows(FLOOD, window=W, warmup=0.0, sustain=8.0)
    mix = (("crm.accounts", 1.0),)
    plan = LoadPlan((TenantLoad("acme", 2000.0, 5, mix), TenantLoad("globex", 2000.0, 5, mix),
                     TenantLoad("initech", 2000.0, 5, mix)), 30.0, 60, timeout=0.25)
    load = BackgroundLoad(plan, "http://127.0.0.1:9", {"acme": "ok", "globex": "limited",
                                                        "initech": "slow"},
                          transport=httpx.MockTransport(handler), recorder=windows,
                          origin=windows.origin)
    assert load._client.timeout.read == 0.25  # the plan's (the scenario's) client timeout
    report = load.start().wait(5)
    outcomes = windows.recorder.arrays(1)["outcomes"][0]
    assert report.sent == 60 == int(outcomes.sum())
    by_tenant = {t: dict(zip(("ok", "timeout", "rate_limited"), outcomes[i][:3].tolist()))
                 for i, t in enumerate(("acme", "globex", "initech"))}
    assert by_tenant["acme"]["ok"] == report.by_status["200"]
    assert by_tenant["globex"]["rate_limited"] == report.by_status["429"]
    assert by_tenant["initech"]["timeout"] == report.by_status["error"]
    counters = dict(zip(windows.recorder.arrays(1)["counter_names"],
                        windows.recorder.arrays(1)["counters"][0].tolist()))
    assert counters["cache.hits"] == report.by_status["200"]


def test_the_load_plan_takes_the_scenarios_client_timeout() -> None:
    from chaosomnisql.load import plan_from_scenario

    plan = plan_from_scenario(FLOOD, 10, 50)
    assert plan.timeout == FLOOD.topology.gateway.timeout == 5.0


def _flaky(failures: int) -> httpx.MockTransport:
    """Attempts fail ``failures`` times (503 NO_HEALTHY_AZ), then one answers, in turn (one
    worker: a request's attempts are consecutive)."""
    count = [0]

    def handler(request: httpx.Request) -> httpx.Response:
        count[0] += 1
        if count[0] % (failures + 1):
            return httpx.Response(503, json={"error": {"code": "NO_HEALTHY_AZ"}})
        return httpx.Response(200, json={"rows": []})
    return httpx.MockTransport(handler)


def _retrying_load(failures: int, budget: float | None, pushes: tuple[Any, ...] = (),
                   ) -> tuple[RunWindows, BackgroundLoad]:
    from labcore.scenario import Retries

    windows = RunWindows(FLOOD, window=W, warmup=0.0, sustain=8.0)
    spec = Retries(max_attempts=3, backoff="exponential", base="1ms", cap="2ms",
                   budget=budget)
    plan = LoadPlan((TenantLoad("acme", 2000.0, 5, (("crm.accounts", 1.0),)),), 30.0, 20,
                    retries=spec)
    load = BackgroundLoad(plan, "http://127.0.0.1:9", {"acme": "k"}, workers=1,
                          transport=_flaky(failures), recorder=windows, origin=windows.origin,
                          pushes=pushes)
    return windows, load


def _totals(windows: RunWindows) -> tuple[Any, dict[str, int]]:
    """Outcomes of tenant 0 and the counters, summed over every window recorded."""
    arrays = windows.recorder.arrays(max(windows.recorder.windows) + 1)
    counters = dict(zip(arrays["counter_names"], arrays["counters"].sum(axis=0).tolist()))
    return arrays["outcomes"][:, 0].sum(axis=0), counters


def test_the_load_retries_as_the_scenarios_client_does() -> None:
    """Two 503s then an answer, three attempts allowed: every request ends ok, once, with
    three attempts (the simulator's retry_amplification reads 3)."""
    windows, load = _retrying_load(failures=2, budget=None)
    report = load.start().wait(10)
    outcomes, counters = _totals(windows)
    assert report.sent == int(outcomes.sum()) == int(outcomes[0])  # all ok, each once
    assert counters["client.requests"] == report.sent
    assert counters["client.attempts"] == counters["client.requests"] * 3
    assert counters["client.retries"] == counters["client.requests"] * 2
    assert FLOOD.topology.gateway.retries.max_attempts == 3  # what plan_from_scenario passes


def test_a_config_push_changes_the_loads_retries_from_its_time_on() -> None:
    """A retry_policy push at run time 0 (one attempt): no request is retried, so the
    two 503s before each answer stand; without it (above) each request ends ok."""
    from labcore.retries import PolicyPush

    windows, load = _retrying_load(failures=2, budget=None,
                                   pushes=(PolicyPush(0.0, None, None, 1),))
    report = load.start().wait(10)
    outcomes, counters = _totals(windows)
    assert report.sent == counters["client.requests"] == counters["client.attempts"] > 0
    assert counters["client.retries"] == 0 and load.retries.max_attempts == 1
    assert int(outcomes[0]) < report.sent  # the 503s stood: not every request ended ok


def test_an_exhausted_retry_budget_lets_the_error_stand() -> None:
    windows, load = _retrying_load(failures=10**6, budget=0.0)  # every attempt fails
    load.retries.budget.tokens = 0.0  # nothing saved, nothing earned
    report = load.start().wait(10)
    outcomes, counters = _totals(windows)
    assert report.sent == counters["client.retries_denied"] == int(outcomes.sum())
    assert outcomes[0] == 0 and counters.get("client.retries", 0) == 0


# --------------------------------------------- open loop: slow answers do not slow the load


def _slow_transport(seconds: float, sent_at: list[float]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        sent_at.append(time.monotonic())
        time.sleep(seconds)
        return httpx.Response(200, json={"rows": []})
    return httpx.MockTransport(handler)


def _slow_load(workers: int | None) -> tuple[RunWindows, BackgroundLoad, list[float]]:
    sent_at: list[float] = []
    windows = RunWindows(FLOOD, window=W, warmup=0.0, sustain=8.0)
    plan = LoadPlan((TenantLoad("acme", 40.0, 5, (("crm.accounts", 1.0),)),), 1.0, 10_000)
    load = BackgroundLoad(plan, "http://127.0.0.1:9", {"acme": "k"}, workers=workers,
                          transport=_slow_transport(0.5, sent_at), recorder=windows,
                          origin=windows.origin)
    return windows, load, sent_at


def _late(windows: RunWindows) -> int:
    arrays = windows.recorder.arrays(max(windows.recorder.windows, default=0) + 1)
    return int(dict(zip(arrays["counter_names"], arrays["counters"].sum(axis=0)))["loadgen.late"])


def test_the_pool_is_sized_for_every_request_in_flight() -> None:
    """Little's law on the longest a request can take: the flood of rate_limit_flood at
    `standin` (umbrella 2/s x 10) may have 3 attempts x 5 s + 2 backoffs of 2 s each in
    flight: 20/s x 19 s = 380 threads (a pool of 16 once turned its 4-minute flood into
    a 13-minute backlog)."""
    from chaosomnisql.load import MAX_WORKERS, plan_from_scenario, pool_size

    flood = plan_from_scenario(FLOOD, 240, 20_000, 10, tenants=("umbrella",))
    assert flood.total_rate == pytest.approx(20.0)
    assert pool_size(flood) == 380
    no_retries = LoadPlan((TenantLoad("acme", 0.1, 5, (("crm.accounts", 1.0),)),), 1, 1)
    assert pool_size(no_retries) == 8  # at least 8
    huge = LoadPlan((TenantLoad("acme", 1e6, 5, (("crm.accounts", 1.0),)),), 1, 1)
    assert pool_size(huge) == MAX_WORKERS


def test_slow_answers_do_not_slow_an_open_loop_load() -> None:
    """40 req/s for 1 s, each answered in 0.5 s: every request leaves on schedule (within
    the second) and none is late."""
    windows, load, sent_at = _slow_load(workers=None)
    start = time.monotonic()
    report = load.start().wait(10)
    assert report.sent == len(sent_at) >= 20  # ~40 expected
    assert max(sent_at) - start < 1.5
    assert _late(windows) == 0


def test_a_short_pool_counts_late_sends_and_never_outlives_the_load() -> None:
    """Two threads for 40 req/s answered in 0.5 s (4 req/s): the backlog is counted late
    and what is still queued when the load's second is over is never sent."""
    windows, load, sent_at = _slow_load(workers=2)
    start = time.monotonic()
    report = load.start().wait(10)
    assert report.sent == len(sent_at) <= 2 * 4  # what two threads send in ~1.5 s
    assert time.monotonic() - start < 3.0
    assert _late(windows) >= 20  # the rest of ~40 scheduled


#: How long test_every_thread_has_a_connection's server takes to answer.
SLOW_ANSWER = 1.0


def test_every_thread_has_a_connection() -> None:
    """~160 requests at once to a loopback server answering in 1 s: the server has more
    than httpx's default pool (100 connections) in flight at once, and all are answered
    within the client's timeout. With that default pool the rest waited for a connection
    until they timed out without being sent: the chaos flood's victims saw 100% time-outs
    while the stand-in's connectors made no call (13:48 UTC). The peak is what tells the
    pool's size; the timeout (answer + 2.5 s) only has to hold on a loaded machine (with
    1 s against 1.5 s, 5 of 170 timed out in a CI rehearsal, 22:00 UTC)."""
    import threading as _threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    lock, inflight, peak = _threading.Lock(), [0], [0]

    class Slow(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            self.rfile.read(int(self.headers.get("content-length", 0)))
            with lock:
                inflight[0] += 1
                peak[0] = max(peak[0], inflight[0])
            time.sleep(SLOW_ANSWER)
            with lock:
                inflight[0] -= 1
            body = b'{"rows": []}'
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 512  # socketserver's 5 drops a burst's SYNs: 1 s retries

    server = Server(("127.0.0.1", 0), Slow)
    server.daemon_threads = True
    _threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        plan = LoadPlan((TenantLoad("acme", 400.0, 5, (("crm.accounts", 1.0),)),), 0.4, 10_000,
                        timeout=SLOW_ANSWER + 2.5)
        load = BackgroundLoad(plan, f"http://127.0.0.1:{server.server_port}", {"acme": "k"})
        report = load.start().wait(20)
    finally:
        server.shutdown()
    assert report.sent > 110  # more than httpx's default pool, at once
    assert peak[0] > 100, peak  # ... and in flight at the server at once: not pooled
    assert report.by_status == {"200": report.sent}
