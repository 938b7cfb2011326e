"""A real Prometheus over the live stand-in (`python -m sandbox up` starts it): rules loaded,
every service scraped, and the runbook queries showing SOP-101's noisy tenant, SOP-102's
stampede and SOP-103's bulk 401s while the stand-in suffers them. Loads are bounded
(seconds and request counts), loopback only."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from chaosomnisql.load import BackgroundLoad, LoadPlan, LoadReport, TenantLoad

from labcore.scenario_file import load_scenario
from observability.queries import instant, load_queries, ranking
from sandbox.testing import detached_sandbox
from sim.export import canary_queries

pytestmark = pytest.mark.sandbox

REPO = Path(__file__).resolve().parents[2]
QUERIES = load_queries()
SCRAPE_WAIT = 3.0  # > one scrape (2 s) plus a rule evaluation
CRM = (("crm.accounts", 1.0),)
MIXED = (("crm.accounts", 0.5), ("tickets.tickets", 0.5))


class Live:
    """The sandbox's state, an HTTP client, bounded loads and Prometheus queries."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state: dict[str, Any] = json.loads((root / "state.json").read_text())
        self.http = httpx.Client(timeout=30.0)
        self.prom = str(self.state["prometheus_url"])
        self.started = time.time()

    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        token = self.state.get("admin_token")  # issue 16 adds one; harmless before
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        resp = self.http.request(method, f"{self.state['admin_url']}{path}", json=body,
                                 headers=headers)
        resp.raise_for_status()
        return resp.json()

    def load(self, tenants: dict[str, tuple[float, tuple[tuple[str, float], ...]]],
             seconds: float, keys: int, seed: int) -> LoadReport:
        plan = LoadPlan(tuple(TenantLoad(t, rate, 5, mix) for t, (rate, mix) in tenants.items()),
                        seconds, max_requests=int(seconds * 80), keys=keys, seed=seed)
        api = {t: self.state["tenants"][t]["api_key"] for t in tenants}
        return BackgroundLoad(plan, self.state["gateway_url"], api, workers=24).start().wait(
            seconds + 30)

    def query(self, name: str, window: str, at: float | None = None,
              label: str = "tenant") -> list[tuple[str, float]]:
        if at is not None:
            time.sleep(max(0.0, at - time.time()))
        return ranking(instant(self.prom, QUERIES[name].promql(window), at, self.http), label)


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    with detached_sandbox("omnisql-obs-") as box:
        handle = Live(box)
        yield handle
        handle.http.close()


def test_prometheus_is_up_with_the_rules_loaded(live: Live) -> None:
    assert live.http.get(f"{live.prom}/-/ready").status_code == 200
    groups = live.http.get(f"{live.prom}/api/v1/rules").json()["data"]["groups"]
    expected = {g["name"] for p in (REPO / "observability" / "rules").glob("*.yml")
                for g in yaml.safe_load(p.read_text())["groups"]}
    assert {g["name"] for g in groups} == expected
    assert sum(len(g["rules"]) for g in groups) == 53
    assert all(r["health"] == "ok" for g in groups for r in g["rules"])


def test_every_service_is_scraped(live: Live) -> None:
    deadline = time.monotonic() + 15
    while True:
        targets = live.http.get(f"{live.prom}/api/v1/targets").json()["data"]["activeTargets"]
        health = {t["labels"]["service"]: t["health"] for t in targets}
        if set(health.values()) == {"up"} or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert health == {name: "up" for name in live.state["services"] if name != "admin"}
    up = instant(live.prom, 'sum(up{job="omnisql"})', client=live.http)
    assert float(up[0]["value"][1]) == len(health)


def test_sop101_noisy_tenant_comes_out_on_top(live: Live) -> None:
    # globex floods crm (distinct keys, so cache misses reach the provider) while acme and
    # initech send their usual trickle; crm's per-tenant limit is 5/s (the flood fault).
    live.admin("POST", "/faults/provider/crm", {"rate_limit_per_s": 5})
    try:
        report = live.load({"globex": (40.0, CRM), "acme": (3.0, CRM), "initech": (3.0, CRM)},
                           seconds=15, keys=5000, seed=101)
    finally:
        live.admin("DELETE", "/faults/provider/crm")
    end = time.time()
    assert report.by_status["429"] > 0, report.as_dict()
    noisy = live.query("noisy_tenant", "20s", end + SCRAPE_WAIT)
    assert [t for t, _ in noisy][:1] == ["globex"], noisy
    assert noisy[0][1] > 3 * max(v for t, v in noisy[1:]), noisy
    limited = live.query("rate_limited_tenants", "20s", end + SCRAPE_WAIT)
    assert limited and limited[0][0] == "globex", limited
    providers = live.query("provider_rate_limited", "20s", end + SCRAPE_WAIT, "provider")
    assert providers[0][0] == "crm" and providers[0][1] > 0, providers


def test_sop103_bulk_401_shows_for_one_provider(live: Live) -> None:
    time.sleep(20)  # let the flood's crm calls leave the 15-s window
    live.admin("POST", "/faults/tokens/expire", {"provider": "crm", "fraction": 1.0})
    try:
        report = live.load({"acme": (8.0, MIXED), "umbrella": (8.0, MIXED)}, seconds=10,
                           keys=5000, seed=103)
    finally:
        live.admin("POST", "/admin/tokens/refresh", {"provider": "crm"})
    end = time.time()
    assert report.by_status["502"] > 0, report.as_dict()
    ratio = dict(live.query("provider_unauthorized_ratio", "12s", end + SCRAPE_WAIT,
                            "provider"))
    assert ratio.get("crm", 0.0) > 0.2, ratio
    assert ratio["tickets"] == 0.0, ratio


def test_sop102_stampede_shows_in_misses_and_provider_calls(live: Live) -> None:
    tenants = {"initech": (12.0, MIXED)}
    # 4 keys x 2 objects: the 72 requests of the first load fill the cache (TTL 60 s);
    # entries left by earlier tests would expire during the warm phase: drop them first
    live.admin("POST", "/admin/cache/invalidate", {"tenant": "initech"})
    live.load(tenants, seconds=6, keys=4, seed=102)
    live.load(tenants, seconds=8, keys=4, seed=102)  # steady: all hits
    warm = time.time()
    time.sleep(SCRAPE_WAIT)  # the warm phase's last samples are scraped before the flush
    live.admin("POST", "/admin/cache/invalidate", {})
    flushed = time.time()
    live.load(tenants, seconds=8, keys=4, seed=102)  # the same keys, now all cold
    cold = time.time()
    window = f"{round(cold - flushed + SCRAPE_WAIT)}s"
    misses_warm = sum(v for _, v in live.query("cache_miss_rate", "8s", warm, "zone"))
    misses_cold = sum(v for _, v in live.query("cache_miss_rate", window, cold + SCRAPE_WAIT,
                                               "zone"))
    calls_warm = sum(v for _, v in live.query("provider_calls", "8s", warm, "provider"))
    calls_cold = sum(v for _, v in live.query("provider_calls", window, cold + SCRAPE_WAIT,
                                              "provider"))
    assert misses_cold > 0 and misses_cold > 2 * misses_warm, (misses_warm, misses_cold)
    assert calls_cold > 2 * calls_warm, (calls_warm, calls_cold)
    assert live.query("connector_p95", window, cold + SCRAPE_WAIT, "connector")


def test_exported_argo_query_fails_a_bad_canary_live(live: Live) -> None:
    # canary_bad_release's exported rule (1-min window, 100 samples, +0.5 points) over a
    # canary with 20% errors at 30% of the traffic: the Argo metric reads > 0.005 (failed).
    analysis = load_scenario(REPO / "scenarios" / "canary_bad_release.yaml").release.analysis  # type: ignore[union-attr]
    query = canary_queries(analysis).argo("error_increase")
    live.admin("POST", "/admin/canary", {"version": "v2", "weight": 0.3, "error_rate": 0.2})
    try:
        live.load({"acme": (15.0, MIXED), "globex": (15.0, MIXED)}, seconds=15, keys=40,
                  seed=17)
    finally:
        live.admin("DELETE", "/admin/canary")
    end = time.time() + SCRAPE_WAIT
    time.sleep(SCRAPE_WAIT)
    (row,) = instant(live.prom, query, end, live.http)
    assert float(row["value"][1]) > analysis.error_increase, row
    tracks = dict(live.query("canary_error_ratio", "20s", end, "track"))
    assert tracks["canary"] > tracks["stable"] + 0.05, tracks


def test_chaos_probes_read_the_slis_from_prometheus(live: Live) -> None:
    from chaosomnisql.prometheus import (
        noisy_tenant,
        prometheus_error_ratio,
        prometheus_latency_p95,
        runbook_query,
    )

    config = {"omnisql_target": "sandbox", "omnisql_sandbox_dir": str(live.root)}
    report = live.load({"umbrella": (20.0, MIXED), "acme": (2.0, MIXED)}, seconds=8,
                       keys=5000, seed=6)
    time.sleep(SCRAPE_WAIT)
    assert report.by_status["200"] > 0
    assert noisy_tenant("15s", config) == "umbrella"
    ratio = prometheus_error_ratio("15s", config)
    failed = sum(n for s, n in report.by_status.items() if s.startswith("5") or s == "429")
    assert ratio is not None and abs(ratio - failed / report.sent) < 0.05, (ratio, report)
    p95 = prometheus_latency_p95("15s", config)
    assert p95 is not None and 0 < p95 < 5.0
    rows = runbook_query("provider_calls", "15s", config)
    assert {labels["provider"] for labels, _ in rows} == {"crm", "tickets"}

def test_every_dashboard_panel_returns_data_during_the_run(live: Live) -> None:
    # Last in the module: the flood, the 401s, the stampede and the canary above have run,
    # so every panel (429s, 401 ratio, canary track...) had something to show at some point.
    from observability.dashboards import DASHBOARDS

    empty = []
    for uid, (_, panels) in DASHBOARDS.items():
        for panel in panels:
            resp = live.http.get(f"{live.prom}/api/v1/query_range", params={
                "query": panel.expr, "start": live.started, "end": time.time(), "step": "5s"})
            resp.raise_for_status()
            if not resp.json()["data"]["result"]:
                empty.append(f"{uid}: {panel.title}")
    assert empty == []
