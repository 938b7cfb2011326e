"""The stand-in's blue-green cutover (issue 18), on a stand-in of this module's own.

The stand-in is configured from blue_green_cutover's ``standin`` profile. Queries are made
slow by the fault API (a fixed latency on the crm provider), held in flight on blue until
the gateway counts them, and then ``POST /admin/release/cutover`` switches to green:
with a drain longer than the queries nothing is cut and the drain time is measured; with
a shorter one the queries still on blue are cut (503 ENGINE_UNAVAILABLE, the simulator's
UNAVAILABLE) and the drain time is null. Distinct ids per test: every query misses the
cache and really waits for the provider.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from labcore.sandbox_client import LOOPBACK_HOSTS, ApiError, SandboxClient
from sandbox.testing import REPO, detached_sandbox, wait_for

pytestmark = [pytest.mark.sandbox, pytest.mark.timeout(300)]

SQL = "SELECT id, name FROM crm.accounts WHERE id = {}"


class Box:
    def __init__(self, root: Path) -> None:
        self.state: dict[str, Any] = json.loads((root / "state.json").read_text())
        self.admin = SandboxClient.from_state(self.state, LOOPBACK_HOSTS)

    def query(self, key: int) -> tuple[int, str, float]:
        """Status, error code (or the answering version) and seconds taken."""
        api_key = self.state["tenants"]["acme"]["api_key"]
        started = time.monotonic()
        resp = httpx.post(f"{self.state['gateway_url']}/v1/query", json={"sql": SQL.format(key)},
                          headers={"Authorization": f"Bearer {api_key}", "X-OmniSQL-User": "u1"},
                          timeout=30.0)
        body = resp.json()
        what = body["version"] if resp.status_code == 200 else body["error"]["code"]
        return resp.status_code, what, time.monotonic() - started

    def release(self) -> dict[str, Any]:
        answer: dict[str, Any] = self.admin.call("GET", "/admin/release")
        return answer

    def slow(self, latency_ms: float) -> None:
        self.admin.call("POST", "/faults/provider/crm", {"latency_ms": latency_ms})

    def in_flight(self, pool: ThreadPoolExecutor, keys: range) -> list[Future[Any]]:
        """Send ``keys`` and wait until the gateway has them all in flight."""
        colour = self.release()["active"]
        futures = [pool.submit(self.query, k) for k in keys]
        assert wait_for(lambda: self.release()["inflight"][colour] == len(keys), 20.0,
                        step=0.05), self.release()
        return futures


@pytest.fixture(scope="module")
def box() -> Iterator[Box]:
    up_args = ("--no-prometheus", "--scenario", str(REPO / "scenarios/blue_green_cutover.yaml"),
               "--profile", "standin")
    with detached_sandbox("omnisql-cutover-", up_args=up_args) as root:
        handles = Box(root)
        yield handles
        handles.admin.call("POST", "/faults/reset")


@pytest.fixture()
def fresh(box: Box) -> Iterator[Box]:
    box.admin.call("POST", "/faults/reset")
    yield box
    box.admin.call("POST", "/faults/reset")


def test_the_config_shows_the_release_and_blue_serving(fresh: Box) -> None:
    config = fresh.admin.call("GET", "/admin/config")
    assert config["release"]["kind"] == "blue_green"
    assert config["release"]["drain_timeout"] == 30.0 and config["release"]["version"] == "v2"
    assert config["cutover"]["active"] == "blue" and config["cutover"]["phase"] == "idle"
    assert "release" not in " ".join(config["not_honoured"])
    # Green has blue's worker slots in every zone.
    engines = config["engine"]
    for zone in fresh.state["zones"]:
        assert engines[f"engine-green-{zone}"]["workers"] == engines[f"engine-{zone}"]["workers"]


def test_a_long_drain_cuts_nothing_and_reports_its_time(fresh: Box) -> None:
    fresh.slow(1500)
    with ThreadPoolExecutor(4) as pool:
        futures = fresh.in_flight(pool, range(1000, 1004))
        switched = fresh.admin.call("POST", "/admin/release/cutover",
                                    {"version": "v2", "drain_timeout": 20})
        assert switched["active"] == "green" and switched["phase"] == "draining"
        assert switched["inflight_at_switch"] == 4
        answers = [f.result() for f in futures]
    assert [a[:2] for a in answers] == [(200, "v1")] * 4  # blue finished them
    assert wait_for(lambda: fresh.release()["phase"] == "done", 20.0)
    facts = fresh.release()
    assert facts["dropped_requests"] == 0
    assert facts["drain_seconds"] is not None and 0 < facts["drain_seconds"] <= 20, facts
    # New attempts go to green, running the new version.
    fresh.slow(0)
    assert fresh.query(1100)[:2] == (200, "v2")


def test_a_drain_shorter_than_a_slow_query_cuts_it(fresh: Box) -> None:
    fresh.slow(4000)  # under the gateway's 5 s timeout: only the teardown can end them
    with ThreadPoolExecutor(3) as pool:
        futures = fresh.in_flight(pool, range(2000, 2003))
        switched = fresh.admin.call("POST", "/admin/release/cutover",
                                    {"version": "v2", "drain_timeout": 0.5})
        answers = [f.result() for f in futures]
    assert switched["inflight_at_switch"] == 3
    assert [a[:2] for a in answers] == [(503, "ENGINE_UNAVAILABLE")] * 3
    assert all(a[2] < 4.0 for a in answers), answers  # cut, not answered by the provider
    assert wait_for(lambda: fresh.release()["phase"] == "done", 10.0)
    facts = fresh.release()
    assert facts["dropped_requests"] == 3 and facts["drain_seconds"] is None, facts


def test_the_reset_puts_blue_back_without_cutting(fresh: Box) -> None:
    fresh.slow(4000)
    with ThreadPoolExecutor(2) as pool:
        futures = fresh.in_flight(pool, range(3000, 3002))
        fresh.admin.call("POST", "/admin/release/cutover", {"version": "v9", "drain_timeout": 2})
        fresh.admin.call("POST", "/faults/reset")  # its first step: before the deadline
        answers = [f.result() for f in futures]
    # The drain would have cut them at 2 s; the reset ended it and blue finished them.
    assert [a[:2] for a in answers] == [(200, "v1")] * 2
    release = fresh.release()
    assert release["active"] == "blue" and release["phase"] == "idle", release
    assert release["dropped_requests"] is None
    assert fresh.query(3100)[:2] == (200, "v1")


def test_a_second_cutover_while_draining_is_409(fresh: Box) -> None:
    fresh.slow(2000)
    with ThreadPoolExecutor(1) as pool:
        futures = fresh.in_flight(pool, range(4000, 4001))
        fresh.admin.call("POST", "/admin/release/cutover", {"version": "v2", "drain_timeout": 30})
        with pytest.raises(ApiError) as err:
            fresh.admin.call("POST", "/admin/release/cutover",
                             {"version": "v3", "drain_timeout": 30})
        futures[0].result()
    assert err.value.status == 409


@pytest.mark.parametrize("body", [{}, {"version": "v2"}, {"drain_timeout": 5},
                                  {"version": "v2", "drain_timeout": 0},
                                  {"version": "v2", "drain_timeout": -1},
                                  {"version": "v2", "drain_timeout": 1e9},
                                  {"version": "v2", "drain_timeout": True},
                                  {"version": "v2", "drain_timeout": "30s"},
                                  {"version": "", "drain_timeout": 5},
                                  {"version": "a b", "drain_timeout": 5},
                                  {"version": 2, "drain_timeout": 5},
                                  {"version": "v2", "drain_timeout": 5, "lease": 3}])
def test_a_bad_cutover_is_400(box: Box, body: dict[str, Any]) -> None:
    with pytest.raises(ApiError) as err:
        box.admin.call("POST", "/admin/release/cutover", body)
    assert err.value.status == 400
    assert box.release()["phase"] != "draining"
