"""End-to-end tests against a real sandbox (Redis, PostgreSQL, supervisord, HTTP services).

The module shares one sandbox; tests that inject faults undo them, and the last test takes
the sandbox down and checks nothing survives.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from sandbox.catalog import CATALOG, make_row
from sandbox.state import PORT_LOCK
from sandbox.supervise import survivors
from sandbox.testing import wait_for

Sandbox = Any  # the conftest's handle (test dirs are not packages, so no import of it)
REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.sandbox, pytest.mark.timeout(240)]


def run_cli(*args: str, timeout: float = 90.0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, check=False,
                          timeout=timeout, env=env, cwd=REPO)




def admin_cli(sb: Sandbox, *args: str) -> dict[str, Any]:
    out = run_cli("-m", "sandbox.admin", "--dir", str(sb.root), *args, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def test_state_file_contract(sandbox: Sandbox) -> None:
    st = sandbox.state
    assert os.stat(sandbox.root / "state.json").st_mode & 0o777 == 0o600
    assert st["zones"] == ["az-a", "az-b", "az-c"]
    assert set(st["providers"]) == {"crm", "tickets"}
    assert set(st["tenants"]) == {"acme", "globex", "initech", "umbrella"}
    assert st["tenants"]["acme"]["users"] == ["u1", "u2", "u3", "u4", "u5"]
    assert st["postgres"]["primary"]["zone"] != st["postgres"]["replica"]["zone"]
    for url in [st["gateway_url"], st["admin_url"], *st["providers"].values()]:
        assert url.startswith("http://127.0.0.1:")
    assert run_cli("-m", "sandbox", "status", "--dir", str(sandbox.root)).returncode == 0


def test_miss_then_hit_returns_catalog_rows(sandbox: Sandbox) -> None:
    sql = "SELECT id, name FROM crm.accounts WHERE id = 7 LIMIT 10"
    first, second = sandbox.query("acme", sql), sandbox.query("acme", sql)
    assert first.status_code == 200 and second.status_code == 200
    assert first.json()["cache"] == "miss" and second.json()["cache"] == "hit"
    row = make_row(CATALOG["crm"]["accounts"], "acme", 7)
    assert second.json()["rows"] == [{"id": 7, "name": row["name"]}]
    assert second.json()["version"] == "v1" and second.json()["zone"] in sandbox.state["zones"]
    paged = sandbox.query("acme", "SELECT * FROM tickets.tickets LIMIT 450").json()
    assert [r["id"] for r in paged["rows"]] == list(range(1, 451))  # three provider pages


BAD_BODIES = [
    ("SELECT", 400, "BAD_SQL"),
    ("DROP TABLE tenants", 400, "BAD_SQL"),
    ("SELECT id FROM crm.accounts WHERE id = 1; DELETE FROM x", 400, "BAD_SQL"),
    ("SELECT nope FROM crm.accounts", 400, "BAD_SQL"),
    ("SELECT id FROM crm.accounts LIMIT 0", 400, "BAD_SQL"),
    ("SELECT id FROM crm.widgets", 404, "NOT_FOUND"),
    ("SELECT id FROM erp.accounts", 404, "NOT_FOUND"),
]


@pytest.mark.parametrize("sql,status,code", BAD_BODIES)
def test_bad_sql_is_a_clear_4xx(sandbox: Sandbox, sql: str, status: int, code: str) -> None:
    resp = sandbox.query("globex", sql)
    assert (resp.status_code, resp.json()["error"]["code"]) == (status, code)


def test_bad_requests_are_4xx_and_leak_no_secret(sandbox: Sandbox) -> None:
    url = f"{sandbox.state['gateway_url']}/v1/query"
    good = sandbox.headers("acme")
    key = sandbox.state["tenants"]["acme"]["api_key"]
    cases = [
        ({}, {"sql": "SELECT id FROM crm.accounts"}, 401),
        ({**good, "Authorization": "Bearer " + key[::-1]}, {"sql": "SELECT 1"}, 401),
        ({"Authorization": good["Authorization"]}, {"sql": "SELECT id FROM crm.accounts"}, 400),
        (good, {"sql": 42}, 400),
        (good, {"query": "SELECT id FROM crm.accounts"}, 400),
        (good, {"sql": "SELECT id FROM crm.accounts", "pad": "x" * 17_000}, 413),
    ]
    for headers, body, status in cases:
        resp = sandbox.http.post(url, json=body, headers=headers)
        assert resp.status_code == status, (body, resp.text)
        assert key not in resp.text and "error" in resp.json()
    raw = sandbox.http.post(url, content=b"{not json", headers=good)
    assert raw.status_code == 400 and raw.json()["error"]["code"] == "BAD_REQUEST"
    metrics = sandbox.http.get(f"{sandbox.admin}/metrics").text
    assert key not in metrics
    logs = "".join(p.read_text(errors="replace") for p in (sandbox.root / "logs").glob("*.log"))
    assert key not in logs


def test_tenant_isolation(sandbox: Sandbox) -> None:
    sql = "SELECT id, name FROM crm.accounts WHERE id = 21"
    acme = sandbox.query("acme", sql).json()
    globex = sandbox.query("globex", sql).json()
    assert globex["cache"] == "miss", "globex must not be served acme's cached entry"
    assert globex["rows"] != acme["rows"]
    # Asking for acme's data with globex's key, the only lever a client has, is refused.
    resp = sandbox.http.post(f"{sandbox.state['gateway_url']}/v1/query",
                             json={"sql": sql, "tenant": "acme"}, headers=sandbox.headers("globex"))
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "FORBIDDEN"
    store = redis.Redis(port=sandbox.state["redis"]["port"],
                        password=sandbox.state["internal"]["redis_password"])
    keys = [k.decode() for k in store.scan_iter(match="omnisql:cache:*")]
    assert all(k.split(":")[2] in sandbox.state["tenants"] for k in keys)
    assert {k.split(":")[2] for k in keys} >= {"acme", "globex"}
    store.close()


def test_query_log_is_tenant_scoped(sandbox: Sandbox) -> None:
    sandbox.query("initech", "SELECT id FROM crm.contacts WHERE id = 5")
    port = sandbox.state["postgres"]["primary"]["port"]
    password = sandbox.state["internal"]["pg_password"]

    def logged() -> bool:
        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres",
                             password=password) as c:
            rows = c.execute("SELECT DISTINCT tenant FROM query_log").fetchall()
        return "initech" in {r[0] for r in rows}

    assert wait_for(logged, timeout=15)


def test_concurrency_cap_via_admin_cli(sandbox: Sandbox) -> None:
    admin_cli(sandbox, "faults", "provider", "crm", "--latency-ms", "400")
    admin_cli(sandbox, "caps", "set", "umbrella", "u2", "1")
    time.sleep(0.3)
    sqls = [f"SELECT id FROM crm.accounts WHERE id = {300 + i}" for i in range(6)]
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        capped = list(pool.map(lambda s: sandbox.query("umbrella", s, "u2"), sqls))
        other = list(pool.map(lambda s: sandbox.query("globex", s, "u2"), sqls))
    codes = [r.json().get("error", {}).get("code") for r in capped]
    assert codes.count("CONCURRENCY_CAP") >= 1 and all(r.headers.get("retry-after") for r in
                                                      capped if r.status_code == 429)
    assert all(r.status_code == 200 for r in other), "a cap is per tenant and user"
    listed = admin_cli(sandbox, "caps", "list")["caps"]
    assert {"tenant": "umbrella", "user": "u2", "max_concurrency": 1} in listed
    admin_cli(sandbox, "caps", "clear", "umbrella", "u2")
    admin_cli(sandbox, "faults", "reset")
    by_tenant = sandbox.stats()["by_tenant"]
    assert by_tenant["umbrella"]["rate_limited"] >= 1


def test_provider_rate_limit_gives_429(sandbox: Sandbox) -> None:
    resp = sandbox.http.post(f"{sandbox.admin}/faults/provider/crm",
                             json={"rate_limit_per_s": 0.2})
    assert resp.status_code == 200
    results = [sandbox.query("umbrella", f"SELECT id FROM crm.accounts WHERE id = {400 + i}")
               for i in range(4)]
    limited = [r for r in results if r.status_code == 429]
    assert limited and all(r.json()["error"]["code"] == "RATE_LIMIT_EXHAUSTED" for r in limited)
    assert all(int(r.headers["retry-after"]) >= 1 for r in limited)
    assert sandbox.stats()["rate_limited"] >= len(limited)
    metrics = sandbox.http.get(f"{sandbox.admin}/metrics").text
    assert 'status="429",tenant="umbrella"' in metrics
    assert sandbox.http.post(f"{sandbox.admin}/faults/reset").status_code == 200
    after = sandbox.query("umbrella", "SELECT id FROM crm.accounts WHERE id = 499")
    assert after.status_code == 200


def test_token_expiry_then_bulk_refresh(sandbox: Sandbox) -> None:
    expired = sandbox.http.post(f"{sandbox.admin}/faults/tokens/expire",
                                json={"provider": "tickets", "fraction": 1.0}).json()
    assert expired["revoked"] >= 1
    failing = [sandbox.query("acme", f"SELECT id FROM tickets.tickets WHERE id = {i}")
               for i in (11, 12, 13)]
    assert [r.status_code for r in failing] == [502] * 3
    assert {r.json()["error"]["code"] for r in failing} == {"PROVIDER_UNAUTHORIZED"}
    assert sandbox.stats()["unauthorized"] >= 3
    status = sandbox.http.get(f"{sandbox.state['providers']['tickets']}/status").json()
    assert status == {"status": "operational"}  # SOP-103 step 1: not an outage
    refreshed = admin_cli(sandbox, "tokens", "refresh", "tickets")
    assert refreshed["refreshed"] == 4 and refreshed["duration_seconds"] < 5
    assert sandbox.query("acme", "SELECT id FROM tickets.tickets WHERE id = 11").status_code == 200


def test_faulty_canary_then_rollback(sandbox: Sandbox) -> None:
    deployed = admin_cli(sandbox, "canary", "deploy", "v2", "0.5", "--error-rate", "1.0")
    assert deployed["weight"] == 0.5
    results = [sandbox.query("acme", "SELECT id FROM crm.accounts WHERE id = 7")
               for _ in range(30)]
    failed = [r for r in results if r.status_code == 500]
    assert 3 <= len(failed) <= 27 and all("v2" in r.text for r in failed)
    admin_cli(sandbox, "canary", "rollback")
    after = [sandbox.query("acme", "SELECT id FROM crm.accounts WHERE id = 7") for _ in range(10)]
    assert all(r.status_code == 200 and r.json()["version"] == "v1" for r in after)


def _provider_calls(sb: Sandbox, provider: str) -> float:
    text = sb.http.get(f"{sb.state['providers'][provider]}/metrics").text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if f.name == "omnisql_provider_requests" and s.name.endswith("_total"))


def _options(sb: Sandbox, **body: Any) -> None:
    sb.http.post(f"{sb.admin}/admin/cache/options", json=body).raise_for_status()
    engines = [u for n, u in sb.state["services"].items() if n.startswith("engine-")]

    def applied() -> bool:  # engines poll their options once a second
        seen = [sb.http.get(f"{u}/health").json() for u in engines]
        return all(s[k] == v for s in seen for k, v in body.items())

    assert wait_for(applied, 15)


def test_coalescing_and_soft_cache(sandbox: Sandbox) -> None:
    sandbox.http.post(f"{sandbox.admin}/faults/provider/crm", json={"latency_ms": 300})
    before = _provider_calls(sandbox, "crm")
    sql = "SELECT id, name FROM crm.accounts WHERE id = 77"
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        results = list(pool.map(lambda _: sandbox.query("initech", sql), range(12)))
    assert all(r.status_code == 200 for r in results)
    # One fetch in all, though the gateway spreads requests over three AZ engines: they
    # coalesce across engines (sandbox.fills; it was one fetch per engine).
    assert _provider_calls(sandbox, "crm") - before == 1
    _options(sandbox, soft_cache=True, ttl_seconds=1.0)
    try:
        sql = "SELECT id, name FROM crm.accounts WHERE id = 78"
        assert sandbox.query("initech", sql).json()["cache"] == "miss"
        time.sleep(1.2)
        stale = sandbox.query("initech", sql)
        assert stale.status_code == 200 and stale.json()["cache"] == "stale"
        assert wait_for(lambda: sandbox.query("initech", sql).json()["cache"] == "hit", 15, 0.1)
    finally:
        _options(sandbox, soft_cache=False, ttl_seconds=60.0)
        sandbox.http.post(f"{sandbox.admin}/faults/reset")


def test_second_up_is_refused(sandbox: Sandbox) -> None:
    again = run_cli("-m", "sandbox", "up", "--dir", str(sandbox.root), "--detach")
    assert again.returncode == 2 and "already running" in again.stderr
    assert sandbox.query("acme", "SELECT id FROM crm.accounts WHERE id = 7").status_code == 200
    bad = run_cli("-m", "sandbox", "up", "--dir", str(sandbox.root / "state.json"))
    assert bad.returncode == 2
    assert run_cli("-m", "sandbox", "frobnicate").returncode == 2


def _samples(sb: Sandbox, family: str) -> list[Any]:
    """Samples of one family in the admin's merged exposition (which must parse)."""
    text = sb.http.get(f"{sb.admin}/metrics").text
    return [s for f in text_string_to_metric_families(text) if f.name == family
            for s in f.samples]


def _work_counts(sb: Sandbox) -> dict[str, float]:
    counts: dict[str, float] = {}
    for s in _samples(sb, "omnisql_engine_work_seconds"):
        if s.name.endswith("_count") and s.labels["scope"].endswith(".engine"):
            counts[s.labels["part"]] = counts.get(s.labels["part"], 0.0) + s.value
    return counts


def test_each_query_times_its_engine_slot_in_the_simulators_two_parts(sandbox: Sandbox) -> None:
    """An engine slot's time per query, as `sim calibrate` fits it: its own work
    (`topology.engine.service_time`) and the cache lookup (`topology.cache.latency`)."""
    before = _work_counts(sandbox)
    answers = [sandbox.query("initech", f"SELECT id FROM crm.accounts WHERE id = {n % 4}")
               for n in range(12)]  # misses, then hits
    assert [r.status_code for r in answers] == [200] * 12
    assert {r.json()["cache"] for r in answers} >= {"hit", "miss"}
    after = _work_counts(sandbox)
    assert after["service"] - before.get("service", 0.0) == 12
    assert after["cache_lookup"] - before.get("cache_lookup", 0.0) == 12
    buckets = {s.labels["le"]: s.value for s in _samples(sandbox, "omnisql_engine_work_seconds")
               if s.name.endswith("_bucket") and s.labels["part"] == "service"}
    assert "2.5e-05" in buckets  # resolved below the request histogram's 1 ms


def test_merged_metrics_have_per_tenant_series(sandbox: Sandbox) -> None:
    sandbox.query("umbrella", "SELECT id FROM crm.accounts WHERE id = 1")
    requests = _samples(sandbox, "omnisql_requests")
    scopes = {s.labels["scope"] for s in requests}
    assert {"gateway", "mock.crm"} <= scopes and any(".engine" in x for x in scopes)
    assert any(s.labels["tenant"] == "umbrella" and s.labels["scope"] == "gateway"
               for s in requests)
    assert _samples(sandbox, "omnisql_request_latency_seconds")
    assert _samples(sandbox, "omnisql_metadata_replica_lag_seconds")


def _process_states(sb: Sandbox) -> dict[str, str]:
    data: dict[str, str] = sb.http.get(f"{sb.admin}/admin/status").json()["processes"]
    return data


def test_lose_az_routes_around_then_restore(sandbox: Sandbox) -> None:
    lost = sandbox.http.post(f"{sandbox.admin}/faults/az/az-b/lose").json()
    assert lost["lost"] is True
    procs = _process_states(sandbox)
    assert procs["az-b:engine-az-b"] == "STOPPED" and procs["az-b:connector-az-b"] == "STOPPED"
    results = [sandbox.query("globex", f"SELECT id FROM crm.accounts WHERE id = {i % 5 + 1}")
               for i in range(30)]
    assert all(r.status_code == 200 for r in results)
    assert {r.json()["zone"] for r in results} <= {"az-a", "az-c"}
    assert wait_for(lambda: sandbox.stats()["zones"]["az-b"] == "unhealthy", 15)
    gauges = _samples(sandbox, "omnisql_zone_healthy")
    assert {s.labels["zone"]: s.value for s in gauges} == {"az-a": 1, "az-b": 0, "az-c": 1}
    nodes = {s.labels["node"]: s.labels["role"]
             for s in _samples(sandbox, "omnisql_metadata_node_up")}
    assert nodes == {"pg-primary": "primary", "pg-replica": "down"}
    assert sandbox.http.get(f"{sandbox.admin}/faults").json()["zones_lost"] == ["az-b"]
    assert sandbox.http.post(f"{sandbox.admin}/faults/az/az-z/lose").status_code == 404
    sandbox.http.post(f"{sandbox.admin}/faults/az/az-b/restore").raise_for_status()
    assert wait_for(lambda: sandbox.stats()["zones"]["az-b"] == "healthy", 30)
    zones = {sandbox.query("globex", "SELECT id FROM crm.accounts WHERE id = 1").json()["zone"]
             for _ in range(9)}
    assert "az-b" in zones


def test_a_running_stand_ins_ports_are_registered_against_other_stand_ins(
        sandbox: Sandbox) -> None:
    """`up` records every port it chose under its supervisord's pid, so that a stand-in
    starting beside it never picks one, even while this one has let it go (a lost zone)."""
    registry = json.loads(PORT_LOCK.with_suffix(".json").read_text())
    registered = set(registry[str(sandbox.state["pid"])])
    st = sandbox.state
    urls = [*st["services"].values(), st["internal"]["gateway_internal_url"]]
    ports = {int(url.rsplit(":", 1)[1]) for url in urls}
    ports |= {st["redis"]["port"], st["postgres"]["primary"]["port"],
              st["postgres"]["replica"]["port"]}
    if "prometheus_url" in st:
        ports.add(int(st["prometheus_url"].rsplit(":", 1)[1]))
    assert ports == registered


def test_replica_lag_is_sampled_under_writes(sandbox: Sandbox) -> None:
    """The stand-in samples its replica's lag once a second (what `sim calibrate` fits)."""
    admin = sandbox.admin
    cleared = sandbox.http.delete(f"{admin}/admin/metadata/lag").json()
    assert cleared["samples"] == [] and cleared["interval_seconds"] == 1.0
    # A running writer: WAL to replay, so a lag to measure. Even under steady writes about
    # one reading in six is NULL (PostgreSQL forgets the lag once the replica reports itself
    # caught up twice in a row), which the series counts as idle; so the writer runs until
    # two samples are in, within a bound, rather than for a fixed 3.5 s (CI run of stop 24:
    # one sample and two idle readings in 3.5 s).
    end = time.monotonic() + 20.0
    series = sandbox.http.get(f"{admin}/admin/metadata/lag").json()
    while len(series["samples"]) < 2 and time.monotonic() < end:
        written = sandbox.http.post(f"{admin}/admin/metadata/writes", json={"n": 20}).json()
        assert written["error"] is None
        series = sandbox.http.get(f"{admin}/admin/metadata/lag").json()
    print(f"lag samples (s): {series['samples']}, idle {series['idle']}")
    assert len(series["samples"]) >= 2, series
    assert all(0.0 < s < 5.0 for s in series["samples"]), series  # loopback: far below 5 s


def test_metadata_failover_counts_lost_writes(sandbox: Sandbox) -> None:
    admin = sandbox.admin

    def streaming() -> bool:  # the precondition for a meaningful RPO figure
        status = sandbox.http.get(f"{admin}/admin/metadata/status").json()
        return status["replica_lag_seconds"] is not None

    assert wait_for(streaming, 30)
    first = sandbox.http.post(f"{admin}/admin/metadata/writes", json={"n": 100}).json()
    assert first["acknowledged"] == 100 and first["error"] is None
    answers: list[dict[str, Any]] = []

    def writer() -> None:
        for _ in range(100):
            answer = sandbox.http.post(f"{admin}/admin/metadata/writes", json={"n": 20}).json()
            answers.append(answer)
            if answer["error"]:
                return

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(0.5)  # kill while writes are in flight
    assert sandbox.http.post(f"{admin}/faults/metadata/primary/kill").status_code == 200
    thread.join(timeout=60)
    assert answers[-1]["error"] is not None, "writes to a dead primary must fail"
    at_loss = sandbox.http.get(f"{admin}/admin/metadata/lag").json()["at_loss"]
    assert at_loss["node"] == "pg-primary" and at_loss["streaming"] is True, at_loss
    assert 0.0 <= at_loss["seconds"] < 5.0, at_loss  # the RPO the chaos probe reports
    last_ack = max(a["last_acknowledged"] or 0 for a in [first, *answers])
    promoted = sandbox.http.post(f"{admin}/admin/metadata/promote", timeout=60)
    assert promoted.status_code == 200 and promoted.json()["primary"]["zone"] == "az-b"
    visible = sandbox.http.get(f"{admin}/admin/metadata/writes").json()["max_visible"]
    # Sequence numbers are contiguous, so acknowledged-but-missing writes are the gap below
    # the last ack. `visible` may exceed it: a commit can land while its ack is lost in the
    # kill (an in-doubt write, not a lost one).
    lost = max(0, last_ack - visible)
    print(f"RPO: {lost} acknowledged writes lost of {last_ack}; in doubt: "
          f"{max(0, visible - last_ack)}")
    assert visible >= 100 and visible - last_ack <= 1 and lost <= last_ack
    # The data plane kept serving, and the control plane writes to the new primary.
    assert sandbox.query("acme", "SELECT id FROM crm.accounts WHERE id = 7").status_code == 200
    after = sandbox.http.post(f"{admin}/admin/metadata/writes", json={"n": 5}).json()
    assert after["acknowledged"] == 5 and after["last_acknowledged"] == visible + 5


def test_all_zones_lost_is_503_and_reset_restores(sandbox: Sandbox) -> None:
    for zone in sandbox.state["zones"]:
        sandbox.http.post(f"{sandbox.admin}/faults/az/{zone}/lose").raise_for_status()
    resp = sandbox.query("acme", "SELECT id FROM crm.accounts WHERE id = 7")
    assert resp.status_code == 503 and resp.json()["error"]["code"] == "NO_HEALTHY_AZ"
    active = sandbox.http.post(f"{sandbox.admin}/faults/reset").json()
    assert active["zones_lost"] == [] and active["metadata_promoted"] is True
    assert sandbox.http.post(f"{sandbox.admin}/faults/reset").status_code == 200  # idempotent
    sql = "SELECT id FROM crm.accounts WHERE id = 7"
    assert wait_for(lambda: sandbox.query("acme", sql).status_code == 200, 30)
    status = sandbox.http.get(f"{sandbox.admin}/admin/metadata/status").json()
    assert status["primary"]["role"] == "primary" and status["replica"]["role"] == "down"
    assert status["needs_rebuild"] == ["pg-primary"]  # reset never restarts a demoted primary


def test_rebuild_demoted_primary_as_replica(sandbox: Sandbox) -> None:
    status = admin_cli(sandbox, "metadata", "rebuild")
    assert status["replica"]["name"] == "pg-primary" and status["replica"]["role"] == "replica"
    assert status["primary"]["name"] == "pg-replica" and status["needs_rebuild"] == []
    written = sandbox.http.post(f"{sandbox.admin}/admin/metadata/writes", json={"n": 3}).json()
    port = status["replica"]["port"]

    password = sandbox.state["internal"]["pg_password"]

    def replicated() -> bool:
        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres",
                             password=password) as c:
            row = c.execute("SELECT max(seq) FROM seq_writes").fetchone()
        return bool(row and row[0] == written["last_acknowledged"])

    assert wait_for(replicated, 30)


def test_down_leaves_no_process(sandbox: Sandbox) -> None:
    assert survivors(sandbox.root)
    down = run_cli("-m", "sandbox", "down", "--dir", str(sandbox.root), timeout=90)
    assert down.returncode == 0, down.stderr
    assert survivors(sandbox.root) == []
    assert run_cli("-m", "sandbox", "status", "--dir", str(sandbox.root)).returncode == 1
