"""A region loss on the stand-in (issue 18), acted out with real processes.

regional_failover at its ``standin_short`` profile with a timeline of one second per step
and a DNS TTL of a few seconds: the loss makes the gateway refuse fast and stops every
zone's processes and the metadata primary; after the timeline the zones serve again with a
cold cache (the first fetch of a key warmed before the loss is a miss), the DNS shift admits
a growing share of requests, and the metadata writes acknowledged before the loss are
checked on the promoted replica (the RPO). One stand-in of this module's own, bounded.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from labcore.sandbox_client import LOOPBACK_HOSTS, ApiError, SandboxClient, apply_scenario
from sandbox.testing import REPO, detached_sandbox, wait_for

pytestmark = [pytest.mark.sandbox, pytest.mark.timeout(400)]

SCENARIO = REPO / "scenarios/regional_failover.yaml"
TTL = 6.0
SHORT = ("failover.detection=1s", "failover.decision=1s", "failover.spinup=1s",
         f"failover.dns_ttl={TTL:g}s")
SQL = "SELECT id, name FROM crm.accounts WHERE id = {}"


class Box:
    def __init__(self, root: Path) -> None:
        self.state: dict[str, Any] = json.loads((root / "state.json").read_text())
        self.admin = SandboxClient.from_state(self.state, LOOPBACK_HOSTS)
        key = self.state["tenants"]["acme"]["api_key"]
        self.http = httpx.Client(timeout=15.0, headers={"Authorization": f"Bearer {key}",
                                                        "X-OmniSQL-User": "u1"})

    def query(self, key: int) -> httpx.Response:
        return self.http.post(f"{self.state['gateway_url']}/v1/query",
                              json={"sql": SQL.format(key)})

    def faults(self) -> dict[str, Any]:
        answer: dict[str, Any] = self.admin.call("GET", "/faults")
        return answer

    def phase(self) -> str | None:
        region = self.faults()["region"]
        return None if region is None else str(region["phase"])


@pytest.fixture(scope="module")
def box() -> Iterator[Box]:
    with detached_sandbox("omnisql-region-", up_args=("--no-prometheus",)) as root:
        handles = Box(root)
        yield handles
        handles.http.close()


def _code(resp: httpx.Response) -> str:
    return str(resp.json().get("error", {}).get("code", "")) if resp.status_code != 200 else ""


def test_a_region_loss_needs_a_failover_timeline(box: Box) -> None:
    with pytest.raises(ApiError) as refused:  # no scenario applied: nothing to fail over to
        box.admin.call("POST", "/faults/region/lose", {})
    assert refused.value.status == 409
    apply_scenario(box.admin, SCENARIO, "standin_short", SHORT)
    with pytest.raises(ApiError) as bad:
        box.admin.call("POST", "/faults/region/lose", {"blackhole": "yes"})
    assert bad.value.status == 400
    assert box.faults()["region"] is None


def _shift(box: Box) -> list[tuple[float, bool]]:
    """(seconds into the shift, reached the data plane) for queries during the DNS shift."""
    seen: list[tuple[float, bool]] = []
    started = time.monotonic()
    while box.phase() == "shifting" and time.monotonic() - started < 3 * TTL:
        resp = box.query(11)
        seen.append((time.monotonic() - started, _code(resp) != "REGION_UNAVAILABLE"))
    return seen


def test_region_loss_refuses_then_fails_over_cold_and_shifts(box: Box) -> None:
    assert box.admin.call("GET", "/admin/config")["failover"]["dns_ttl_seconds"] == TTL
    for _ in range(2):
        assert box.query(7).status_code == 200
    assert box.query(7).json()["cache"] == "hit"  # warm before the loss
    writes = box.admin.call("POST", "/admin/metadata/writes", {"n": 200})
    lost = box.admin.call("POST", "/faults/region/lose", {})
    assert lost["phase"] == "lost" and lost["timeline"] == {
        "detection": 1.0, "decision": 1.0, "spinup": 1.0}
    started = time.monotonic()
    refused = box.query(7)
    assert _code(refused) == "REGION_UNAVAILABLE" and refused.status_code == 503
    assert time.monotonic() - started < 2.0  # refused fast, not timed out
    faults = box.faults()
    assert sorted(faults["zones_lost"]) == ["az-a", "az-b", "az-c"]
    assert faults["metadata_primary_killed"]
    processes = box.admin.call("GET", "/admin/status")["processes"]
    assert {v for k, v in processes.items() if k.startswith("az-")} == {"STOPPED"}

    assert wait_for(lambda: box.phase() in ("shifting", "failed_over"), 60.0, step=0.05)
    shift = _shift(box)
    assert wait_for(lambda: box.phase() == "failed_over", 60.0)
    region = box.faults()["region"]
    assert region["switch_seconds"] >= 3.0 and region["error"] is None, region
    assert region["shifted_seconds"] >= region["switch_seconds"] + TTL - 0.5
    # The DNS shift: a growing share reaches the secondary (admitted w.p. elapsed / TTL).
    early = [ok for t, ok in shift if t < TTL / 3]
    late = [ok for t, ok in shift if t > 2 * TTL / 3]
    assert early and late, shift
    assert sum(early) / len(early) < sum(late) / len(late), shift
    # The secondary's cache is cold: the key warmed before the loss misses first.
    first = box.query(7)
    assert first.status_code == 200 and first.json()["cache"] == "miss", first.text
    assert box.query(7).json()["cache"] == "hit"
    assert box.faults()["zones_lost"] == []
    # RPO: the acknowledged writes checked on the promoted replica.
    status = box.admin.call("GET", "/admin/metadata/status")
    assert status["promoted"] and status["primary"]["name"] == "pg-replica"
    visible = box.admin.call("GET", "/admin/metadata/writes")["max_visible"]
    assert 0 <= writes["last_acknowledged"] - (visible or 0) <= writes["last_acknowledged"]
    with pytest.raises(ApiError) as again:  # no replica to promote until the rebuild
        box.admin.call("POST", "/faults/region/lose", {})
    assert again.value.status == 409 and "rebuild" in again.value.message


def _reset(box: Box) -> None:
    box.admin.call("POST", "/faults/reset")
    if box.admin.call("GET", "/admin/metadata/status")["needs_rebuild"]:
        box.admin.call("POST", "/admin/metadata/rebuild")


def test_without_replicated_secrets_every_saas_call_is_refused(box: Box) -> None:
    """failover.replicated without connector_secrets: after the failover no OAuth token can
    be read, so a miss's provider call answers 401 (the simulator's revoked tenants)."""
    _reset(box)
    apply_scenario(box.admin, SCENARIO, "standin_short",
                   (*SHORT, "failover.replicated=[metadata, kms_keys]"))
    box.admin.call("POST", "/faults/region/lose", {})
    assert wait_for(lambda: box.phase() == "failed_over", 90.0)
    refused = box.query(21)  # a cold key: the miss calls the provider
    assert _code(refused) == "PROVIDER_UNAUTHORIZED", refused.text
    assert box.faults()["tokens_expired"]
    _reset(box)  # the reset refreshes every provider's tokens
    apply_scenario(box.admin, SCENARIO, "standin_short", SHORT)
    assert wait_for(lambda: box.query(22).status_code == 200, 30.0)


def test_a_blackholed_region_leaves_clients_hanging(box: Box) -> None:
    _reset(box)
    box.admin.call("POST", "/faults/region/lose", {"blackhole": True})
    started = time.monotonic()
    hung = box.query(5)
    waited = time.monotonic() - started
    box.admin.call("POST", "/faults/reset")
    timeout = box.admin.call("GET", "/admin/config")["gateway"]["timeout_seconds"]
    assert hung.status_code == 504 and waited >= timeout - 0.5, (hung.text, waited)


def test_reset_ends_the_failover_and_everything_serves(box: Box) -> None:
    _reset(box)
    box.admin.call("POST", "/faults/region/lose", {})  # and a reset in the middle of one
    assert _code(box.query(3)) == "REGION_UNAVAILABLE"
    box.admin.call("POST", "/faults/reset")
    faults = box.faults()
    assert faults["region"] is None and faults["zones_lost"] == []
    assert not faults["metadata_primary_killed"]
    assert wait_for(lambda: box.query(3).status_code == 200, 60.0)


SNAPSHOT = REPO / "scenarios/regional_failover_snapshot_rpo.yaml"


def _newest_snapshot(box: Box) -> float:
    newest = box.admin.call("GET", "/admin/metadata/snapshots")["newest_started_at"]
    return 0.0 if newest is None else float(newest)


def test_a_snapshot_copy_restores_the_newest_snapshot_and_loses_the_writes_after_it(
        box: Box) -> None:
    """``failover.metadata.mode: snapshot``: the secondary's metadata is the newest pg_dump
    taken before the loss, not the streaming replica's; the RPO is the loss − its start."""
    _reset(box)
    interval = 30.0
    apply_scenario(box.admin, SNAPSHOT, "standin",
                   (*SHORT, f"failover.metadata.interval={interval:g}s"))
    running = box.admin.call("GET", "/admin/config")["failover"]["metadata"]
    assert running["running"] and running["interval_seconds"] == interval, running
    kept = box.admin.call("POST", "/admin/metadata/writes", {"n": 50})
    acked = time.time()
    assert wait_for(lambda: _newest_snapshot(box) > acked, interval + 30.0)
    lost = box.admin.call("POST", "/admin/metadata/writes", {"n": 50})  # after the snapshot
    box.admin.call("POST", "/faults/region/lose", {})
    assert wait_for(lambda: box.phase() == "failed_over", 90.0)
    region = box.faults()["region"]
    assert region["error"] is None, region
    visible = box.admin.call("GET", "/admin/metadata/writes")["max_visible"]
    assert lost["acknowledged"] == 50 and visible == kept["last_acknowledged"], (kept, visible)
    restored = region["metadata_snapshot"]
    assert restored["rpo_seconds"] == pytest.approx(
        region["lost_at"] - restored["snapshot_started_at"], abs=1e-5)
    assert 0.0 < restored["rpo_seconds"] < interval
    schedule = box.admin.call("GET", "/admin/metadata/snapshots")
    assert schedule["restored"] == restored and schedule["rpo_bound_seconds"] == interval
    assert not schedule["running"]  # stopped at the loss
    # The scheduled snapshots keep the schedule: started at applied + phase + k * interval.
    origin = schedule["started_at"] + schedule["phase_seconds"]
    scheduled = [s for s in schedule["snapshots"] if s["kind"] == "scheduled"]
    assert scheduled and all((s["started_at"] - origin) % interval < 2.0 for s in scheduled)
    # The secondary serves from the restored metadata (keys, connectors).
    assert wait_for(lambda: box.query(31).status_code == 200, 30.0)
