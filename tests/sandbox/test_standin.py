"""The stand-in from a scenario (issue 18), on a real stand-in of this module's own.

One stand-in (no Prometheus, to spare the shared cores) is configured in turn from every
shipped scenario with a ``standin`` profile; ``GET /admin/config``, which asks the running
services for their settings, must equal the profile's values. Then behaviour: worker slots
really queue (and refuse past ``queue_limit``), the provider answers 429 with the scenario's
Retry-After at the scenario's rate, its latency follows the scenario's distribution,
``cache.enabled: false`` sends every query to the connector, and ``/faults/reset`` restores
tokens and the scenario's settings.
"""

from __future__ import annotations

import glob
import json
import math
import re
import statistics
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import redis
from pydantic import TypeAdapter
from scipy.stats import binomtest

from labcore.distributions import Distribution, LogNormal
from labcore.sandbox_client import LOOPBACK_HOSTS, ApiError, SandboxClient, apply_scenario
from labcore.scenario import Scenario
from labcore.scenario_file import read_scenario
from sandbox.cache import cache_key
from sandbox.sql import parse
from sandbox.standin import derive_seed
from sandbox.testing import REPO, detached_sandbox

pytestmark = pytest.mark.sandbox

STANDIN = sorted(p for p in glob.glob(str(REPO / "scenarios" / "*.yaml"))
                 if "standin:" in Path(p).read_text())
#: Profile fields a runner acts out (the load, the timeline, the judge), not the stand-in.
RUNNER_FIELDS = ("run.", "workload.", "faults.", "checks.", "release.", "mitigations.",
                 "topology.cache.keys")
_DIST: TypeAdapter[Any] = TypeAdapter(Distribution)
#: No rate limit and a fast provider, for tests that are not about them.
FAST = ("topology.providers.crm.rate_limit.per_tenant=100000/s",
        "topology.providers.crm.rate_limit.app=100000/s",
        "topology.providers.crm.latency=1ms", "topology.providers.crm.reject_latency=1ms")
SQL = "SELECT id, name FROM crm.accounts WHERE id = {}"


class Box:
    """The stand-in's state, its admin client and raw HTTP helpers."""

    def __init__(self, root: Path) -> None:
        self.state: dict[str, Any] = json.loads((root / "state.json").read_text())
        self.admin = SandboxClient.from_state(self.state, LOOPBACK_HOSTS)
        self.internal = {"X-OmniSQL-Internal": self.state["internal"]["service_token"]}
        self.http = httpx.Client(timeout=10.0)  # keep-alive: one client outpaces the buckets

    def apply(self, path: str, *sets: str) -> dict[str, Any]:
        return apply_scenario(self.admin, path, "standin", sets)

    def query(self, sql: str, tenant: str = "acme") -> httpx.Response:
        key = self.state["tenants"][tenant]["api_key"]
        return httpx.post(f"{self.state['gateway_url']}/v1/query", json={"sql": sql},
                          timeout=30.0, headers={"Authorization": f"Bearer {key}",
                                                 "X-OmniSQL-User": "u1"})

    def provider_token(self, provider: str, tenant: str) -> str:
        secret = self.state["internal"]["oauth_clients"][tenant]
        resp = httpx.post(f"{self.state['providers'][provider]}/oauth/token", timeout=10.0,
                          json={"grant_type": "client_credentials", "client_id": tenant,
                                "client_secret": secret})
        return str(resp.json()["access_token"])

    def provider_get(self, provider: str, token: str) -> httpx.Response:
        obj = "accounts" if provider == "crm" else "tickets"
        return self.http.get(f"{self.state['providers'][provider]}/v1/{obj}",
                             params={"id": "1"}, headers={"Authorization": f"Bearer {token}"})

    def provider_calls(self, tenant: str) -> int:
        """Calls the mock crm answered 200 for `tenant` (its own Prometheus counter)."""
        text = httpx.get(f"{self.state['providers']['crm']}/metrics", timeout=10.0).text
        found = re.search(r'omnisql_requests_total\{[^}]*status="200"[^}]*tenant="'
                          + tenant + r'"[^}]*\} ([0-9.e+]+)', text)
        return int(float(found.group(1))) if found else 0


@pytest.fixture(scope="module")
def box() -> Iterator[Box]:
    up_args = ("--no-prometheus", "--scenario", str(REPO / "scenarios/baseline.yaml"),
               "--profile", "standin")
    with detached_sandbox("omnisql-standin-", up_args=up_args) as root:
        handles = Box(root)
        yield handles
        handles.http.close()


def _value_at(scenario: Scenario, dotted: str) -> Any:
    node: Any = scenario
    for key in dotted.split("."):
        node = node[key] if isinstance(node, dict) else getattr(node, key)
    return node


def _profile_reading(config: dict[str, Any], dotted: str) -> set[Any] | None:
    """The live values a profile field shows as in `GET /admin/config` (None: not mapped)."""
    pools = {"topology.engine.workers_per_zone": ("engine", "workers"),
             "topology.engine.queue_limit": ("engine", "queue_limit"),
             "topology.connectors.workers_per_zone": ("connector", "workers"),
             "topology.connectors.queue_limit": ("connector", "queue_limit")}
    if dotted in pools:
        tier, key = pools[dotted]
        return {service[key] for service in config[tier].values()}
    step = re.fullmatch(r"failover\.(detection|decision|spinup|dns_ttl)", dotted)
    if step:  # the admin's own failover timeline (sandbox.admin.region)
        section = config["failover"]
        if step.group(1) == "dns_ttl":
            return {section["dns_ttl_seconds"]}
        return {_DIST.validate_python({k: f"{v!r}s" if isinstance(v, float) else v
                                       for k, v in section[step.group(1)].items()})}
    limit = re.fullmatch(r"topology\.providers\.(\w+)\.rate_limit\.(\w+)", dotted)
    if limit:
        return {config["providers"][limit.group(1)]["rate_limit"][limit.group(2)]}
    return None


def _burst(rate: float | None, burst: int | None) -> float | None:
    return None if rate is None else float(burst or max(1.0, rate))


def _expected(scenario: Scenario) -> dict[str, Any]:
    """What every running service must report for the scenario, read off its fields."""
    topo = scenario.topology
    on = {m.kind for m in scenario.mitigations if m.start(scenario.faults) == 0.0}
    health, cp = topo.gateway.health_check, topo.control_plane
    return {
        "gateway": {"timeout_seconds": topo.gateway.timeout, "zone_retry": False,
                    "health_check": {"interval_seconds": health.interval,
                                     "failure_threshold": health.failure_threshold,
                                     "success_threshold": health.success_threshold,
                                     "timeout_seconds": min(1.0, health.interval)}},
        "engine": {"workers": topo.engine.workers_per_zone,
                   "queue_limit": topo.engine.queue_limit,
                   "timeout_seconds": topo.gateway.timeout},
        "connector": {"workers": topo.connectors.workers_per_zone,
                      "queue_limit": topo.connectors.queue_limit,
                      "timeout_seconds": topo.connectors.timeout,
                      "retries": {"max_attempts": topo.connectors.retries.max_attempts,
                                  "honour_retry_after": topo.connectors.retries.honour_retry_after,
                                  "max_wait_seconds": topo.connectors.retries.max_wait,
                                  "total_wait_seconds": None},
                      "control_plane": None if cp is None else {
                          "workers": cp.workers_per_zone, "queue_limit": cp.queue_limit,
                          "policy_time": cp.policy_time.model_dump(by_alias=True),
                          "token_lookup_time": cp.token_lookup_time.model_dump(by_alias=True),
                          "seed": scenario.run.seed},
                      "seed": scenario.run.seed},
        "providers": {name: {
            "latency": p.latency.model_dump(by_alias=True),
            "reject_latency": p.reject_latency.model_dump(by_alias=True),
            "error_rate": p.error_rate, "seed": scenario.run.seed,
            "rate_limit": {"per_tenant": p.rate_limit.per_tenant,
                           "per_tenant_burst": _burst(p.rate_limit.per_tenant,
                                                      p.rate_limit.per_tenant_burst),
                           "app": p.rate_limit.app,
                           "app_burst": _burst(p.rate_limit.app, p.rate_limit.app_burst),
                           "retry_after_seconds": p.rate_limit.retry_after}}
            for name, p in topo.providers.items()},
        "cache": {"enabled": topo.cache.enabled, "ttl_seconds": topo.cache.ttl,
                  "soft_cache": "soft_cache" in on, "coalesce": "coalescing" in on},
    }


def test_up_with_a_scenario_starts_configured(box: Box) -> None:
    # The first test of the module: the stand-in as `up --scenario` left it.
    config = box.admin.call("GET", "/admin/config")
    assert config["scenario"]["label"] == "baseline.yaml --profile standin"
    assert {e["workers"] for e in config["engine"].values()} == {2}
    assert {c["workers"] for c in config["connector"].values()} == {4}
    assert config["cache"]["coalesce"] is False and config["gateway"]["zone_retry"] is False


def test_admin_config_equals_every_standin_profile(box: Box) -> None:
    assert len(STANDIN) >= 20
    for path in STANDIN:
        source = read_scenario(path, "standin")
        answer = box.apply(path)
        config = box.admin.call("GET", "/admin/config")
        name = Path(path).name
        assert config["scenario"]["label"] == f"{name} --profile standin", name
        assert config["not_running"] == [] and config["not_honoured"] == answer["not_honoured"]
        for dotted in source.data["profiles"]["standin"]:
            if dotted.startswith(RUNNER_FIELDS):
                continue
            reading = _profile_reading(config, dotted)
            assert reading is not None, f"{name}: profile field {dotted} is nobody's"
            assert reading == {_value_at(source.scenario, dotted)}, f"{name}: {dotted}"
        expected = _expected(source.scenario)
        assert config["gateway"] == expected["gateway"], name
        assert config["cache"] == expected["cache"], name
        assert all(e == expected["engine"] for e in config["engine"].values()), name
        assert all(c == expected["connector"] for c in config["connector"].values()), name
        assert config["providers"] == expected["providers"], name


def _timed(call: Callable[[], httpx.Response]) -> tuple[float, httpx.Response]:
    started = time.monotonic()
    resp = call()
    return time.monotonic() - started, resp


def test_connector_slots_queue_the_request_beyond_them(box: Box) -> None:
    box.apply(str(REPO / "scenarios/baseline.yaml"), *FAST[:2], "topology.providers.crm.latency=1s",
              "topology.connectors.workers_per_zone=2")
    url = f"{box.state['services']['connector-az-a']}/fetch"
    body = {"tenant": "acme", "provider": "crm", "object": "accounts", "where": ["id", 3],
            "limit": 1}

    def fetch(_: int) -> tuple[float, float, httpx.Response]:
        started = time.monotonic()
        resp = httpx.post(url, json=body, headers=box.internal, timeout=30.0)
        return started, time.monotonic(), resp
    with ThreadPoolExecutor(3) as pool:
        results = sorted(pool.map(fetch, range(3)), key=lambda r: r[1])  # by end
    assert [r.status_code for _, _, r in results] == [200, 200, 200]
    (start, first, _), (_, _, _), (_, last, _) = results
    # Two slots: two fetches take the provider's 1 s; the third waits for the first slot to
    # free, then takes 1 s: it ends a second after the first, however far apart the three
    # arrived (timed from the ends: the threads' clients start unevenly on a busy machine).
    assert first - start >= 0.95 and last - first >= 0.9, results
    slots = httpx.get(f"{box.state['services']['connector-az-a']}/_control/config",
                      headers=box.internal, timeout=10.0).json()["slots"]
    assert slots["workers"] == 2 and slots["queued_total"] >= 1 and slots["busy"] == 0


def test_engine_slots_refuse_past_the_queue_limit(box: Box) -> None:
    box.apply(str(REPO / "scenarios/baseline.yaml"), *FAST, "topology.engine.queue_limit=0")
    canary = box.state["services"]["engine-canary"]
    body = {"tenant": "acme", "sql": SQL.format(11)}
    assert httpx.post(f"{canary}/query", json=body, headers=box.internal).status_code == 200
    # The canary's latency multiplier is engine time: 21 → +1 s inside the engine slot.
    httpx.post(f"{canary}/_control", json={"version": "v1", "latency_multiplier": 21},
               headers=box.internal).raise_for_status()
    try:
        with ThreadPoolExecutor(3) as pool:
            results = list(pool.map(lambda _: _timed(lambda: httpx.post(
                f"{canary}/query", json=body, headers=box.internal, timeout=30.0)), range(3)))
    finally:
        httpx.post(f"{canary}/_control", json={"version": "v1"}, headers=box.internal)
    codes = sorted(r.status_code for _, r in results)
    assert codes == [200, 200, 503], results
    refused = next((t, r) for t, r in results if r.status_code == 503)
    assert refused[1].json()["error"]["code"] == "OVERLOADED" and refused[0] < 0.9


def _admitted(box: Box, tokens: list[tuple[str, str]], seconds: float
              ) -> tuple[int, tuple[float, float], list[httpx.Response]]:
    """Call as fast as one client can for `seconds`, cycling through (provider, token).

    Also the bounds on the time between the provider's handling of the first call and of
    the last: from the first call's answer to the last one's sending, and from the first
    one's sending to the last one's answer."""
    ok, refused, started, i = 0, [], time.monotonic(), 0
    first_answered = last_sent = started
    while time.monotonic() - started < seconds:
        last_sent = time.monotonic()
        resp = box.provider_get(*tokens[i % len(tokens)])
        if i == 0:
            first_answered = time.monotonic()
        i += 1
        if resp.status_code == 200:
            ok += 1
        else:
            refused.append(resp)
    return ok, (last_sent - first_answered, time.monotonic() - started), refused


def test_provider_rate_limits_are_the_scenarios(box: Box) -> None:
    box.apply(str(REPO / "scenarios/rate_limit_flood.yaml"), *FAST[2:],
              "topology.providers.tickets.latency=1ms",
              "topology.providers.tickets.reject_latency=1ms")
    acme = box.provider_token("crm", "acme")
    ok, (inner, outer), refused = _admitted(box, [("crm", acme)], 3.0)
    # per tenant 8/s, burst 8 (the profile): the burst plus 8 a second between the first
    # call and the last, as the provider saw them (between the client's inner and outer
    # bounds on that time), ±1 for the token being refilled at the end
    assert 8 + 8 * inner - 1 <= ok <= 8 + 8 * outer + 1, (ok, inner, outer)
    assert refused and all(r.status_code == 429 for r in refused)
    assert {r.headers["retry-after"] for r in refused} == {"1"}
    assert {r.json()["error"]["retry_after"] for r in refused} == {1.0}
    tickets = box.provider_token("tickets", "acme")
    _, _, refused = _admitted(box, [("tickets", tickets)], 1.5)
    assert {r.headers["retry-after"] for r in refused} == {"2"}  # tickets' retry_after: 2s


def test_a_call_needs_the_app_bucket_too(box: Box) -> None:
    # Bursts only (refill 0.01/s): 3 tenants with 8 each would get 24; the app's 18 bind.
    crm = "topology.providers.crm.rate_limit"
    box.apply(str(REPO / "scenarios/rate_limit_flood.yaml"), *FAST[2:],
              f"{crm}.per_tenant=0.01/s", f"{crm}.app=0.01/s")
    got = {t: sum(box.provider_get("crm", box.provider_token("crm", t)).status_code == 200
                  for _ in range(10)) for t in ("acme", "globex", "initech")}
    assert got == {"acme": 8, "globex": 8, "initech": 2}


def test_the_clients_budget_stops_retry_after_waits(box: Box) -> None:
    """The simulator's rule (sandbox.deadline): a rate-limited call whose client has given
    up is not waited out and called again; while the client waits, Retry-After is honoured
    (rate_limit_flood: crm answers Retry-After 1 s, at most 3 calls)."""
    crm = "topology.providers.crm.rate_limit"
    box.apply(str(REPO / "scenarios/rate_limit_flood.yaml"), *FAST[2:],
              f"{crm}.per_tenant=0.01/s", f"{crm}.per_tenant_burst=1")
    url = f"{box.state['services']['connector-az-a']}/fetch"
    body = {"tenant": "acme", "provider": "crm", "object": "accounts", "where": ["id", 4],
            "limit": 1}

    def fetch(budget: str) -> httpx.Response:
        return httpx.post(url, json=body, headers={**box.internal, "X-OmniSQL-Budget": budget},
                          timeout=30.0)
    assert fetch("30").status_code == 200  # the bucket's one token
    gone, alive = _timed(lambda: fetch("0")), _timed(lambda: fetch("30"))
    for _, resp in (gone, alive):
        assert resp.status_code == 429, resp.text
        assert resp.json()["error"]["code"] == "RATE_LIMIT_EXHAUSTED"
    assert gone[0] < 0.5, gone  # one call, no wait
    assert alive[0] >= 1.9, alive  # two Retry-After waits of 1 s between its three calls
    assert fetch("soon").status_code == 400
    assert fetch("-1").status_code == 400


def test_an_answer_after_the_clients_timeout_still_fills_the_cache(box: Box) -> None:
    """docs/model.md: a successful fetch writes the cache, whether or not its client still
    waits (the simulator's connector stores a dead attempt's answer). The engine used to
    stop waiting for its connector at the client's timeout and drop the rows."""
    box.apply(str(REPO / "scenarios/baseline.yaml"), *FAST[:2],
              "topology.providers.crm.latency=2s", "topology.gateway.timeout=1s")
    box.admin.call("POST", "/admin/cache/invalidate", {"tenant": "acme"})
    sql = SQL.format(31)
    first = box.query(sql)
    assert first.status_code == 504, first.text
    store = redis.Redis(port=box.state["redis"]["port"],
                        password=box.state["internal"]["redis_password"])
    key = cache_key("acme", parse(sql).fingerprint())
    stored, deadline = False, time.monotonic() + 15.0
    while not stored and time.monotonic() < deadline:
        time.sleep(0.25)
        stored = bool(store.exists(key))
    assert stored, "the connector's answer never reached the cache"
    second = box.query(sql)
    assert second.status_code == 200 and second.json()["cache"] == "hit", second.text


def test_provider_latency_follows_the_scenarios_distribution(box: Box) -> None:
    box.apply(str(REPO / "scenarios/rate_limit_flood.yaml"), *FAST[:2])
    spec = read_scenario(REPO / "scenarios/rate_limit_flood.yaml",
                         "standin").scenario.topology.providers["crm"].latency
    assert isinstance(spec, LogNormal)
    n = 90
    stream = np.random.default_rng(derive_seed(1, "numpy", "provider.crm.latency"))
    draws = stream.lognormal(np.log(spec.median), spec.sigma, n)
    token = box.provider_token("crm", "acme")
    with ThreadPoolExecutor(3) as pool:
        timed = list(pool.map(lambda _: _timed(lambda: box.provider_get("crm", token)),
                              range(n)))
    assert all(r.status_code == 200 for _, r in timed)
    slept = [float(r.headers["x-mock-latency"]) for _, r in timed]
    # The mock's draws are exactly the first n of the simulator's stream for this provider
    # (in the order the three clients' calls arrived), so their distribution is the
    # scenario's; and each call really took at least its draw.
    assert sorted(slept) == pytest.approx(sorted(draws.tolist()))
    assert all(t >= s for (t, _), s in zip(timed, slept))
    # What a call takes beyond its draw is the HTTP round trip: a few ms on an idle loopback,
    # about 50 ms with six concurrent clients at load 8 on the shared 2-core machine, more
    # on a busier one. A mock that slept its draw twice (or another call's) would add the
    # draw itself, a median of 150 ms: the median excess stays under half of it.
    exact = float(np.median(draws))
    excess = statistics.median(t - s for (t, _), s in zip(timed, slept))
    assert 0.0 <= excess < 0.5 * exact, (excess, exact)
    # The draws themselves: the theoretical median within 4 sd of a sample median of n.
    assert abs(np.log(exact / spec.median)) <= 4 * 1.2533 * spec.sigma / np.sqrt(n)


def test_an_invalidation_with_soft_caching_leaves_stale_copies(box: Box) -> None:
    """cache_stampede_mitigated: with soft caching on, the simulator's invalidation keeps
    each entry as a stale copy served while one refresh runs (a soft purge). The stand-in
    deleted the entries whatever the option, so its "mitigated" stampede was a stampede
    (03:20 and 04:45 chaos runs: 1.34 fetches per key, P95 4.8 s)."""
    box.apply(str(REPO / "scenarios/baseline.yaml"), *FAST)
    sql = SQL.format(23)
    assert box.query(sql).status_code == 200  # cached
    box.admin.call("POST", "/admin/cache/options", {"soft_cache": True})
    time.sleep(2.5)  # the engines poll their options every second
    answer = box.admin.call("POST", "/admin/cache/invalidate", {"tenant": "acme"})
    assert answer["stale"] >= 1 and "deleted" not in answer, answer
    before = box.provider_calls("acme")
    assert box.query(sql).json()["cache"] == "stale"  # served at once, refreshed behind
    box.admin.call("POST", "/admin/cache/options", {"soft_cache": False})
    time.sleep(2.5)
    answer = box.admin.call("POST", "/admin/cache/invalidate", {"tenant": "acme"})
    assert answer["deleted"] >= 1, answer
    assert box.query(sql).json()["cache"] == "miss"
    assert box.provider_calls("acme") - before == 2  # the refresh, then the miss


def test_cache_disabled_sends_every_query_to_the_connector(box: Box) -> None:
    box.apply(str(REPO / "scenarios/rate_limit_flood.yaml"), *FAST)
    before = box.provider_calls("acme")
    answers = [box.query(SQL.format(21)) for _ in range(5)]
    assert [(a.status_code, a.json()["cache"]) for a in answers] == [(200, "miss")] * 5
    assert box.provider_calls("acme") - before == 5
    box.apply(str(REPO / "scenarios/baseline.yaml"), *FAST)  # cache on: one fetch, then hits
    box.admin.call("POST", "/admin/cache/invalidate", {"tenant": "acme"})
    before = box.provider_calls("acme")
    assert [box.query(SQL.format(21)).json()["cache"] for _ in range(5)] == (
        ["miss"] + ["hit"] * 4)
    assert box.provider_calls("acme") - before == 1


def test_reset_restores_tokens_and_the_scenarios_settings(box: Box) -> None:
    answer = box.apply(str(REPO / "scenarios/auth_failure.yaml"), *FAST)
    box.admin.call("POST", "/faults/tokens/expire", {"provider": "crm", "fraction": 1.0})
    box.admin.call("POST", "/admin/cache/options", {"ttl_seconds": 5, "coalesce": True})
    box.admin.call("POST", "/admin/caps", {"tenant": "acme", "user": "u1",
                                           "max_concurrency": 0})
    assert box.query(SQL.format(30)).status_code == 429  # the cap bites
    assert box.query(SQL.format(31), tenant="globex").json()["error"]["code"] == (
        "PROVIDER_UNAUTHORIZED")
    box.admin.call("POST", "/faults/reset")
    assert box.query(SQL.format(32), tenant="globex").status_code == 200
    assert box.query(SQL.format(33)).status_code == 200  # acme's cap is gone
    config = box.admin.call("GET", "/admin/config")
    assert config["cache"] == answer["cache"] and config["user_caps"] == []


@pytest.mark.parametrize("body, status, code", [
    ({"scenario": []}, 400, "BAD_REQUEST"),
    ({"name": "x", "scenario": {"name": "x"}, "extra": 1}, 400, "BAD_REQUEST"),
    ({"name": "x", "scenario": {"name": "x"}}, 400, "BAD_SCENARIO"),
    ({"scenario": {"name": "x", "run": {"duration": "-1s"}}}, 400, "BAD_SCENARIO"),
    ({"scenario": {"pad": "x" * 300_000}}, 413, "PAYLOAD_TOO_LARGE"),
])
def test_bad_scenario_bodies_are_4xx(box: Box, body: dict[str, Any], status: int,
                                     code: str) -> None:
    with pytest.raises(ApiError) as err:
        box.admin.call("POST", "/admin/scenario", body)
    assert (err.value.status, err.value.code) == (status, code)


def test_the_scenario_api_needs_the_admin_token(box: Box) -> None:
    for method, path in (("GET", "/admin/config"), ("POST", "/admin/scenario")):
        resp = httpx.request(method, f"{box.state['admin_url']}{path}", json={}, timeout=10.0)
        assert resp.status_code == 401


def _herd(box: Box, path: str, key: int) -> dict[str, Any]:
    """Six concurrent misses on one new key; the stand-in's counters over those seconds.
    The provider answers in 1 s, so that all six reach the engine before the first fetch
    fills the cache even on a loaded machine (at 300 ms, a CI run once saw only five)."""
    box.apply(str(REPO / path), *FAST[:2], "topology.providers.crm.latency=1s")
    time.sleep(3.0)  # quiet: nothing else in the window read below
    began = time.monotonic()
    with ThreadPoolExecutor(6) as pool:
        assert all(r.status_code == 200 for r in pool.map(
            lambda _: box.query(SQL.format(key), tenant="initech"), range(6)))
    # The stats keep whole-second bins, the current one included: a window of w seconds
    # reaches back at least w - 1, so ceil(elapsed) + 1 covers the herd from its start and
    # stays inside the quiet 3 s before it (a fixed 3 s missed fetches once the herd took
    # over 2 s).
    window = math.ceil(time.monotonic() - began + 0.5) + 1
    stats: dict[str, Any] = box.admin.call("GET", f"/v1/stats?window={window}")
    return stats


def test_stats_count_fetches_and_distinct_keys(box: Box) -> None:
    herd = _herd(box, "scenarios/cache_stampede.yaml", 41)["connector"]  # no coalescing
    assert (herd["fetches"], herd["keys"], herd["fetches_per_key"]) == (6, 1, 6.0)
    assert herd["calls"] == 6 and herd["calls_per_key"] == 6.0
    coalesced = _herd(box, "scenarios/cache_stampede_mitigated.yaml", 42)
    # Coalescing is per engine: at most one fetch in each of the three zones.
    assert 1 <= coalesced["connector"]["fetches"] <= 3 and coalesced["connector"]["keys"] == 1
    assert set(coalesced["pools"]) == {"connector-az-a", "connector-az-b", "connector-az-c"}
    assert all(p["busy"] == 0 and p["workers"] == 4 for p in coalesced["pools"].values())


@pytest.mark.parametrize("query", ["slow_above=abc", "slow_above=0", "slow_above=-1",
                                   "slow_above=nan", "slow_above=inf"])
def test_a_bad_slow_above_is_a_400(box: Box, query: str) -> None:
    with pytest.raises(ApiError) as err:
        box.admin.call("GET", f"/v1/stats?window=5&{query}")
    assert err.value.status == 400 and err.value.code == "BAD_REQUEST"


def test_stats_count_the_requests_slower_than_slow_above(box: Box) -> None:
    assert box.query(SQL.format(43), tenant="initech").status_code == 200
    fast = box.admin.call("GET", "/v1/stats?window=30&slow_above=1e-05")
    slow = box.admin.call("GET", "/v1/stats?window=30&slow_above=3600")
    assert fast["slow"] == fast["requests"] >= 1 and slow["slow"] == 0
    assert fast["by_tenant"]["initech"]["slow"] >= 1 and fast["slow_above"] == 1e-05


def _unauthorized(box: Box, tenant: str) -> int:
    connector = box.admin.call("GET", "/v1/stats?window=3600")["connector"]
    return int(connector["unauthorized"].get(tenant, 0))


def _paced_job(box: Box, provider: str, limit: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + limit
    while True:
        job: dict[str, Any] = box.admin.call("GET", "/admin/tokens/refresh")["jobs"][provider]
        if job["state"] != "running" or time.monotonic() > deadline:
            return job
        time.sleep(0.2)


def test_the_bulk_refresh_keeps_the_runbooks_pace_tenant_after_tenant(box: Box) -> None:
    """SOP-103 paced (sandbox.admin.token_refresh): 2 tokens per tenant at 4/s is 8 calls
    in 2 s; each tenant's calls work again once its own tokens are renewed, in order."""
    box.apply(str(REPO / "scenarios/auth_failure_mitigated.yaml"), *FAST)
    box.admin.call("POST", "/faults/tokens/expire", {"provider": "crm", "fraction": 1.0})
    plan = box.admin.call("POST", "/admin/tokens/refresh",
                          {"provider": "crm", "rate": 4, "tokens_per_tenant": 2})
    assert plan["state"] == "running" and plan["expected_seconds"] == 2.0
    # umbrella is the last tenant: renewed 2 s from now, it still gets 401s, and the
    # connectors count the provider's 401 for it (what chaos reads as connector.unauthorized)
    before = _unauthorized(box, "umbrella")
    assert box.query(SQL.format(40), tenant="umbrella").json()["error"]["code"] == (
        "PROVIDER_UNAUTHORIZED")
    assert _unauthorized(box, "umbrella") - before == 1
    job = _paced_job(box, "crm")
    assert job["state"] == "done" and job["tokens"] == 8
    assert 2.0 <= job["in_effect_seconds"] < 4.0, job  # 8 calls at 4/s: the last at 2.0 s
    usable = job["usable_seconds"]
    assert list(usable) == ["acme", "globex", "initech", "umbrella"]
    assert [usable[t] >= 0.5 * (k + 1) for k, t in enumerate(usable)] == [True] * 4, usable
    assert box.query(SQL.format(41), tenant="umbrella").status_code == 200
    assert box.admin.call("GET", "/faults")["tokens_expired"] == {}


def _renewed(box: Box) -> int:
    return int(box.admin.call("GET", "/admin/tokens/refresh")["jobs"]["crm"]["tokens"])


def _by_renewed(box: Box, count: int, limit: float) -> dict[int, list[bool]]:
    """acme's queries (each on a new key: one crm call) while the paced job renews its
    ``count`` tokens, grouped by how many were renewed; a query during which one more was
    renewed counts nowhere. Until ``count`` are renewed and 5 queries more were answered."""
    outcomes: dict[int, list[bool]] = {k: [] for k in range(count + 1)}
    deadline, key = time.monotonic() + limit, 1000
    while time.monotonic() < deadline and len(outcomes[count]) < 5:
        before, key = _renewed(box), key + 1
        answered = box.query(SQL.format(key)).status_code == 200
        if _renewed(box) == before:
            outcomes[min(before, count)].append(answered)
    return outcomes


def test_a_paced_refresh_brings_a_tenants_calls_back_token_by_token(box: Box) -> None:
    """acme holds 2 tokens (renewed at 5 s and 10 s, one every 5 s): with none renewed
    every call is a 401, with one about half (each call draws one of the two, as the
    simulator draws a call's 401 against the revoked share), with both none. The reset
    stops the job and leaves every tenant one working token."""
    box.apply(str(REPO / "scenarios/auth_failure_mitigated.yaml"), *FAST)
    box.admin.call("POST", "/faults/tokens/expire", {"provider": "crm", "fraction": 1.0})
    # 5 s between the tokens: a query with its two admin reads takes about 0.1 s idle and
    # two or three times that on a busy CI machine, and the binomial test below wants 15
    box.admin.call("POST", "/admin/tokens/refresh",
                   {"provider": "crm", "rate": 1 / 5, "tokens_per_tenant": 2})
    none, half, both = _by_renewed(box, 2, limit=30.0).values()
    assert none and not any(none), none
    assert len(half) >= 15, f"only {len(half)} queries in 5 s"
    answered = sum(half)
    assert 0 < answered < len(half), half
    assert binomtest(answered, len(half), 0.5).pvalue > 1e-3, half
    assert len(both) == 5 and all(both), both
    # umbrella's block (the last) has not begun: its token is still the revoked one
    assert box.query(SQL.format(2000), tenant="umbrella").json()["error"]["code"] == (
        "PROVIDER_UNAUTHORIZED")
    box.admin.call("POST", "/faults/reset")
    assert _paced_job(box, "crm", limit=5.0)["state"] == "failed"  # cancelled
    assert [box.query(SQL.format(2001 + k), tenant=t).status_code
            for k, t in enumerate(("acme", "umbrella") * 3)] == [200] * 6
    store = redis.Redis(port=box.state["redis"]["port"],
                        password=box.state["internal"]["redis_password"])
    assert store.exists("omnisql:tokens:crm:acme", "omnisql:tokens:crm:umbrella") == 0
    store.close()


def test_an_unpaced_refresh_supersedes_a_paced_one(box: Box) -> None:
    box.admin.call("POST", "/admin/tokens/refresh",
                   {"provider": "crm", "rate": 1, "tokens_per_tenant": 100})
    box.admin.call("POST", "/admin/tokens/refresh", {"provider": "crm"})
    job = _paced_job(box, "crm", limit=5.0)
    assert job["state"] == "failed" and "cancelled" in job["error"]
    assert job["in_effect_seconds"] is None


@pytest.mark.parametrize("body", [
    {"provider": "crm", "rate": 0}, {"provider": "crm", "rate": "5/s"},
    {"provider": "crm", "rate": 5, "tokens_per_tenant": 0},
    {"provider": "crm", "rate": 5, "tokens_per_tenant": 1.5},
    {"provider": "crm", "tokens_per_tenant": 200}])
def test_a_bad_paced_refresh_is_400(box: Box, body: dict[str, Any]) -> None:
    with pytest.raises(ApiError) as err:
        box.admin.call("POST", "/admin/tokens/refresh", body)
    assert err.value.status == 400


def test_the_pools_report_the_slot_seconds_the_runners_turn_into_utilization(box: Box) -> None:
    """Each zone's engine reports its slot totals in /v1/stats (``engine_pools``): the
    queries it started and the slot-seconds busy and available (workers x seconds)."""
    box.apply(str(REPO / "scenarios/baseline.yaml"), *FAST)
    before_first = time.monotonic()
    first = box.admin.call("GET", "/v1/stats?window=5")["engine_pools"]
    after_first = time.monotonic()
    assert sorted(first) == [f"engine-{z}" for z in box.state["zones"]]
    for i in range(12):
        assert box.query(SQL.format(500 + i)).status_code == 200
    time.sleep(1.0)
    before_second = time.monotonic()
    second = box.admin.call("GET", "/v1/stats?window=5")["engine_pools"]
    after_second = time.monotonic()

    def delta(key: str) -> float:
        return sum(float(second[n][key]) - float(first[n][key]) for n in first)
    workers = sum(int(p["workers"]) for p in second.values())
    assert delta("started") >= 12
    assert 0.0 < delta("busy_seconds") < delta("capacity_seconds")
    # each engine was read during each stats call: the time between its two readings is
    # at least the gap between the calls and at most their span (+1 ms a pool for rounding)
    inner, outer = before_second - after_first, after_second - before_first
    capacity = delta("capacity_seconds")
    assert workers * inner - 0.003 <= capacity <= workers * outer + 0.003, (
        capacity, workers, inner, outer)
    pools = box.admin.call("GET", "/v1/stats?window=5")["pools"]  # the connectors' too
    assert all("busy_seconds" in p and "capacity_seconds" in p for p in pools.values())


def test_the_control_plane_tier_holds_each_fetch_and_reports_its_slot_seconds(
        box: Box) -> None:
    """auth_failure_control_plane's tier (5 slots per zone, 10 ms + 5 ms mean draws):
    every fetch holds a slot first, and ``control_plane_pools`` shows it."""
    box.apply(str(REPO / "scenarios/auth_failure_control_plane.yaml"), *FAST)
    first = box.admin.call("GET", "/v1/stats?window=5")["control_plane_pools"]
    assert sorted(first) == [f"connector-{z}" for z in box.state["zones"]]
    assert {p["workers"] for p in first.values()} == {5}
    for i in range(8):
        assert box.query(SQL.format(700 + i)).json()["cache"] == "miss"
    second = box.admin.call("GET", "/v1/stats?window=5")["control_plane_pools"]

    def delta(key: str) -> float:
        return sum(float(second[n][key]) - float(first[n][key]) for n in first)
    assert delta("started") == 8
    assert 8 * 0.001 < delta("busy_seconds") < 8 * 0.2  # 15 ms on average each
    assert delta("capacity_seconds") > delta("busy_seconds")
    box.apply(str(REPO / "scenarios/baseline.yaml"), *FAST)  # no control plane: no tier
    assert box.admin.call("GET", "/v1/stats?window=5")["control_plane_pools"] == {}
