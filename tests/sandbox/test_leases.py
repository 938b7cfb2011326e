"""Faults that revert on the stand-in itself, a full `GET /faults`, and the audit log
(issue 16, item 4), against the session's sandbox.

Defects reproduced: a fault outlived the run that injected it (no lease); a canary weight
set on the gateway's internal route did not show in `GET /faults`; no record of who called.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from sandbox.auth import INTERNAL_HEADER
from sandbox.testing import wait_for

Sandbox = Any

pytestmark = [pytest.mark.sandbox, pytest.mark.timeout(180)]




def faults(sb: Sandbox) -> dict[str, Any]:
    resp = sb.http.get(f"{sb.admin}/faults")
    resp.raise_for_status()
    data: dict[str, Any] = resp.json()
    return data


def test_a_zone_loss_nobody_restores_ends_with_its_lease(sandbox: Sandbox) -> None:
    lost = sandbox.http.post(f"{sandbox.admin}/faults/az/az-c/lose", json={"lease_seconds": 2})
    assert lost.status_code == 200 and lost.json()["lease_seconds"] == 2
    listed = faults(sandbox)
    assert listed["zones_lost"] == ["az-c"] and "zone:az-c" in listed["leases"]
    # nobody calls restore (as after a kill -9 of the chaos run): the stand-in does
    assert wait_for(lambda: faults(sandbox)["zones_lost"] == [], 40)
    assert faults(sandbox)["leases"] == {}
    assert wait_for(lambda: sandbox.stats(5)["zones"]["az-c"] == "healthy", 30)


def test_provider_fault_lease_and_its_bounds(sandbox: Sandbox) -> None:
    url = f"{sandbox.admin}/faults/provider/crm"
    ok = sandbox.http.post(url, json={"outage": True, "lease_seconds": 1.5})
    assert ok.status_code == 200 and "provider:crm" in faults(sandbox)["leases"]
    assert wait_for(lambda: faults(sandbox)["providers"] == {}, 20)
    for bad in (b'{"outage": true, "lease_seconds": 0}', b'{"outage": true, "lease_seconds": 1e9}',
                b'{"outage": true, "lease_seconds": NaN}', b'{"lease_seconds": "10"}',
                b'{"lease_seconds": true}'):
        resp = sandbox.http.post(url, content=bad, headers={"Content-Type": "application/json"})
        assert resp.status_code == 400, bad
    assert faults(sandbox)["providers"] == {}
    default = sandbox.http.post(url, json={"latency_ms": 1}).json()
    assert default["lease_seconds"] == 900  # the documented default
    sandbox.http.delete(url).raise_for_status()
    assert "provider:crm" not in faults(sandbox)["leases"]  # cleared by hand: lease over


def test_canary_weight_set_on_the_gateway_shows_in_faults(sandbox: Sandbox) -> None:
    inside = sandbox.state["internal"]["gateway_internal_url"]
    token = sandbox.state["internal"]["service_token"]
    try:
        httpx.post(f"{inside}/internal/canary", json={"weight": 1},
                   headers={INTERNAL_HEADER: token}, timeout=10).raise_for_status()
        listed = faults(sandbox)
        assert listed["canary_weight"] == 1.0 and listed["canary"]["weight"] == 1.0
    finally:
        sandbox.http.post(f"{sandbox.admin}/faults/reset").raise_for_status()
    assert faults(sandbox)["canary"] is None and faults(sandbox)["canary_weight"] == 0.0


def test_canary_deploy_carries_a_lease(sandbox: Sandbox) -> None:
    deployed = sandbox.http.post(f"{sandbox.admin}/admin/canary",
                                 json={"version": "v9", "weight": 0.2, "lease_seconds": 1})
    assert deployed.status_code == 200 and deployed.json()["lease_seconds"] == 1
    assert wait_for(lambda: faults(sandbox)["canary"] is None, 15)
    assert faults(sandbox)["canary_weight"] == 0.0


def test_audit_log_records_who_what_when(sandbox: Sandbox) -> None:
    sandbox.http.get(f"{sandbox.admin}/admin/caps", headers={"X-OmniSQL-Actor": "audit-test"})
    httpx.post(f"{sandbox.admin}/faults/reset", timeout=10)  # no token: refused, still logged
    lines = [json.loads(x) for x in
             (sandbox.root / "logs" / "audit.log").read_text().splitlines()]
    calls = [x for x in lines if isinstance(x["who"], dict)]  # not lease or control plane
    mine = [x for x in calls if x["who"]["actor"] == "audit-test"]
    assert mine and mine[-1]["path"] == "/admin/caps" and mine[-1]["status"] == 200
    assert mine[-1]["at"].startswith("20") and mine[-1]["who"]["peer"].startswith("127.0.0.1:")
    refused = [x for x in lines if x["path"] == "/faults/reset" and x["status"] == 401]
    assert refused
    expired = [x for x in lines if x["who"] == "lease"]
    assert {x["path"] for x in expired} >= {"zone:az-c", "provider:crm", "canary"}
    assert all(x["status"] == "reverted" for x in expired)
