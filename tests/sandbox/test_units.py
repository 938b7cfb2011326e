"""Fast checks of the sandbox's pure parts: SQL subset, token bucket, stats, metrics merge,
supervisor config, admin CLI mapping. No processes are started here."""

from __future__ import annotations

import argparse
import importlib
import math
import pkgutil
import random
import time
from pathlib import Path

import pytest

import sandbox
from sandbox.admin.cli import build_parser, to_call
from sandbox.catalog import CATALOG, make_row
from sandbox.errors import ApiError
from sandbox.metrics import merge_expositions
from sandbox.ratelimit import TokenBucket
from sandbox.routing import Backend, Router
from sandbox.sql import DEFAULT_LIMIT, connector_of, parse
from sandbox.state import Layout
from sandbox.stats import Fact, StatsWindow, bucket_of, bucket_value
from sandbox.supervise import Program, render_config

pytestmark = pytest.mark.sandbox


def test_parse_full_query() -> None:
    q = parse("select id, NAME from CRM.accounts where id = 7 limit 10;")
    assert (q.columns, q.connector, q.obj, q.where, q.limit) == (
        ("id", "name"), "crm", "accounts", ("id", 7), 10)


def test_parse_star_string_value_and_default_limit() -> None:
    q = parse("SELECT * FROM tickets.tickets WHERE status = 'it''s'")
    assert q.columns == CATALOG["tickets"]["tickets"].columns
    assert q.where == ("status", "it's") and q.limit == DEFAULT_LIMIT


@pytest.mark.parametrize("sql,status", [
    ("", 400), ("SELECT", 400), ("SELECT id FROM accounts", 400),
    ("SELECT id FROM crm.accounts WHERE id > 3", 400),
    ("SELECT id FROM crm.accounts LIMIT 1001", 400),
    ("SELECT id FROM crm.accounts; DROP TABLE x", 400), ("SELECT bogus FROM crm.accounts", 400),
    ("SELECT id FROM crm.accounts WHERE bogus = 1", 400), ("SELECT id FROM crm.nope", 404),
])
def test_parse_rejects(sql: str, status: int) -> None:
    with pytest.raises(ApiError) as err:
        parse(sql)
    assert err.value.status == status


def test_fingerprint_depends_on_meaning_not_spelling() -> None:
    a = parse("SELECT id FROM crm.accounts WHERE id = 1")
    b = parse("select  id  from crm.ACCOUNTS where ID = 1 ;")
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != parse("SELECT id FROM crm.accounts WHERE id = 2").fingerprint()


def test_connector_label_is_bounded() -> None:
    assert connector_of("SELECT id FROM crm.accounts") == "crm"
    assert connector_of("SELECT id FROM evil_label.x") == ""
    assert connector_of(42) == ""


def test_rows_differ_per_tenant_and_are_stable() -> None:
    spec = CATALOG["crm"]["accounts"]
    assert make_row(spec, "acme", 3) == make_row(spec, "acme", 3)
    assert make_row(spec, "acme", 3) != make_row(spec, "globex", 3)


def test_token_bucket_burst_then_wait() -> None:
    bucket = TokenBucket(rate=2.0, burst=2.0)
    assert bucket.take() == 0.0 and bucket.take() == 0.0
    wait = bucket.take()
    assert 0.4 < wait <= 0.5
    with pytest.raises(ValueError):
        TokenBucket(rate=0, burst=1)


def test_stats_window_summary() -> None:
    now = time.time()
    stats = StatsWindow()
    facts = [Fact(now - 100, 200, "acme", 0.5, "hit"), Fact(now, 200, "acme", 0.010, "hit"),
             Fact(now, 200, "acme", 0.020, "miss"), Fact(now, 429, "umbrella", 0.001,
                                                         "RATE_LIMIT_EXHAUSTED"),
             Fact(now, 502, "acme", 0.030, "PROVIDER_UNAUTHORIZED"), Fact(now, 401, "", 0.001, "")]
    for fact in facts:
        stats.record(fact)
    out = stats.summary(30)
    assert out["requests"] == 5 and out["errors"] == 3 and out["error_rate"] == 0.6
    assert out["by_status"] == {"200": 2, "401": 1, "429": 1, "502": 1}
    assert out["cache_hit_ratio"] == 0.5 and out["rate_limited"] == 1 and out["unauthorized"] == 2
    # Histogram percentiles: the bucket's upper bound, within 4 % above the true value.
    assert 0.010 <= out["latency_p50"] <= 0.0104 and 0.030 <= out["latency_p99"] <= 0.0312
    umbrella = out["by_tenant"]["umbrella"]
    assert umbrella["requests"] == 1 and umbrella["rate_limited"] == 1
    assert umbrella["error_rate"] == 1.0 and 0.001 <= umbrella["latency_p95"] <= 0.00104
    assert "" not in out["by_tenant"]
    assert StatsWindow().summary(30)["latency_p95"] is None


def test_stats_count_requests_slower_than_a_target_as_the_p95_reads_them() -> None:
    rng = random.Random(7)
    for n in (1, 19, 20, 21, 31, 200):
        stats = StatsWindow()
        for _ in range(n):
            stats.record(Fact(1000.0, 200, "acme", rng.lognormvariate(-1.0, 1.0), "miss"))
        for target in (0.1, 0.3, 1.0, 1.5):
            out = stats.summary(5, now=1000.5, slow_above=target)
            assert out["slow_above"] == target and out["by_tenant"]["acme"]["slow"] == out["slow"]
            # The P95 (nearest rank) is above the target exactly when more than n - rank are.
            rank = max(1, math.ceil(0.95 * n))
            assert (out["latency_p95"] > target) == (out["slow"] > n - rank)
    assert "slow" not in StatsWindow().summary(30) and "slow_above" not in StatsWindow().summary(30)


def test_stats_memory_is_per_second_not_per_request() -> None:
    stats = StatsWindow()
    for i in range(10_000):
        stats.record(Fact(1000.0 + i / 1000, 200, "acme", 0.002, "hit"))  # 10 s of traffic
    assert len(stats._seconds) == 10
    assert stats.summary(5, now=1010.0)["requests"] == 5000


def test_latency_buckets_bound_the_error() -> None:
    for latency in (1e-5, 3.3e-4, 0.0123, 0.5, 9.99):
        value = bucket_value(bucket_of(latency))
        assert latency <= value <= latency * 1.0401


def test_merge_expositions_one_header_per_family() -> None:
    text = ("# HELP omnisql_requests_total Requests\n# TYPE omnisql_requests_total counter\n"
            'omnisql_requests_total{scope="gateway",status="200"} 3.0\n')
    merged = merge_expositions({"gateway": text, "other": text})
    assert merged.count("# TYPE omnisql_requests_total counter") == 1
    assert 'instance="other"' in merged and 'instance="gateway"' in merged


def test_router_round_robin_canary_and_panic() -> None:
    engines = [Backend(f"engine-{z}", z, f"http://127.0.0.1:{i}") for i, z in
               enumerate(["az-a", "az-b", "az-c"], 1)]
    router = Router(engines, Backend("engine-canary", "az-c", "http://127.0.0.1:9"))
    assert {router.choose(set()).zone for _ in range(6)} == {"az-a", "az-b", "az-c"}
    engines[1].observe(False, 2)
    assert engines[1].healthy
    engines[1].observe(False, 2)
    assert not engines[1].healthy and router.zones()["az-b"] == "unhealthy"
    assert "az-b" not in {router.choose(set()).zone for _ in range(6)}
    router.canary_weight = 1.0
    assert router.choose(set()).name == "engine-canary"
    router.canary_weight = 0.0
    for e in engines:
        e.healthy = False
    assert router.choose(set()) is not None  # panic mode: try them all
    assert router.choose({e.name for e in engines}) is None


def test_supervisor_config_groups(tmp_path: Path) -> None:
    progs = [Program("engine-az-a", "az-a", "python -m x"), Program("redis", "shared", "r"),
             Program("pg-primary", "shared", "pg", "postgres", False, "INT")]
    conf = render_config(Layout(tmp_path), progs, "pw-123")
    assert "[group:az-a]\nprograms=engine-az-a" in conf
    assert 'PGPASSWORD="pw-123"' in conf  # libpq in every service reads it
    assert "[group:shared]\nprograms=redis,pg-primary" in conf
    assert "user=postgres" in conf and "stopasgroup=true" in conf
    assert f"file={tmp_path / 'supervisor.sock'}" in conf


@pytest.mark.parametrize("argv,call", [
    (["caps", "set", "acme", "u1", "3"],
     ("POST", "/admin/caps", {"tenant": "acme", "user": "u1", "max_concurrency": 3})),
    (["caps", "clear", "acme", "u1"],
     ("POST", "/admin/caps", {"tenant": "acme", "user": "u1", "max_concurrency": None})),
    (["cache", "invalidate"], ("POST", "/admin/cache/invalidate", {})),
    (["tokens", "refresh", "crm"], ("POST", "/admin/tokens/refresh", {"provider": "crm"})),
    (["canary", "deploy", "v2", "0.05"],
     ("POST", "/admin/canary", {"version": "v2", "weight": 0.05})),
    (["canary", "rollback"], ("DELETE", "/admin/canary", None)),
    (["release", "cutover", "v2", "30"],
     ("POST", "/admin/release/cutover", {"version": "v2", "drain_timeout": 30.0})),
    (["release", "status"], ("GET", "/admin/release", None)),
    (["metadata", "promote"], ("POST", "/admin/metadata/promote", None)),
    (["metadata", "lag"], ("GET", "/admin/metadata/lag", None)),
    (["metadata", "snapshots"], ("GET", "/admin/metadata/snapshots", None)),
    (["faults", "lose-az", "az-b"], ("POST", "/faults/az/az-b/lose", None)),
    (["faults", "lose-region"], ("POST", "/faults/region/lose", {})),
    (["faults", "lose-region", "--blackhole"], ("POST", "/faults/region/lose",
                                                {"blackhole": True})),
    (["faults", "provider", "crm", "--outage"], ("POST", "/faults/provider/crm", {"outage": True})),
    (["stats", "--window", "60"], ("GET", "/v1/stats?window=60", None)),
])
def test_admin_cli_maps_to_endpoints(argv: list[str], call: tuple[object, ...]) -> None:
    args: argparse.Namespace = build_parser().parse_args(argv)
    assert to_call(args) == call


def test_admin_cli_bad_usage_exits_2() -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["caps", "set", "acme"])
    assert exc.value.code == 2


# Every module except the `__main__` entry points (importing those would run them).
MODULES = sorted(m.name for m in pkgutil.walk_packages(sandbox.__path__, "sandbox.")
                 if not m.name.endswith("__main__"))


@pytest.mark.parametrize("name", MODULES)
def test_public_surface_is_declared(name: str) -> None:
    module = importlib.import_module(name)
    assert isinstance(module.__all__, list)  # empty for the package __init__s
    assert all(hasattr(module, attr) for attr in module.__all__)
