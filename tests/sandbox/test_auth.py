"""Authenticated control paths (issue 16, item 3), against the session's sandbox.

Each test reproduces a defect: admin and fault APIs with no credentials; `POST
/internal/canary` on the public listener sending all traffic to the canary; engines and
connectors answering anyone; Redis without a password; PostgreSQL trusting a superuser.
"""

from __future__ import annotations

from typing import Any

import httpx
import psycopg
import pytest
import redis

from sandbox.auth import INTERNAL_HEADER

Sandbox = Any

pytestmark = [pytest.mark.sandbox, pytest.mark.timeout(120)]


def _bare(method: str, url: str, **kw: Any) -> httpx.Response:
    """A call with no credentials (not through the fixture's client, which adds the token)."""
    return httpx.request(method, url, timeout=30.0, **kw)


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/faults"), ("POST", "/faults/reset"), ("POST", "/faults/az/az-b/lose"),
    ("POST", "/faults/metadata/primary/kill"), ("GET", "/admin/caps"),
    ("POST", "/admin/canary"), ("GET", "/admin/status"), ("POST", "/admin/cache/options"),
])
def test_admin_and_fault_routes_need_the_admin_token(sandbox: Sandbox, method: str,
                                                     path: str) -> None:
    url = sandbox.admin + path
    for headers in ({}, {"Authorization": "Bearer wrong"},
                    {"Authorization": f"Bearer {sandbox.state['tenants']['acme']['api_key']}"}):
        resp = _bare(method, url, json={"weight": 1, "version": "v2"}, headers=headers)
        assert resp.status_code == 401, (path, resp.text)
        assert resp.json()["error"]["code"] == "UNAUTHORIZED"
    assert _bare("GET", sandbox.admin + "/faults",
                 headers={"Authorization": f"Bearer {sandbox.state['admin_token']}"}
                 ).status_code == 200
    assert _bare("GET", sandbox.admin + "/health").status_code == 200  # probes stay open


def test_internal_routes_are_not_on_the_public_listener(sandbox: Sandbox) -> None:
    gw, inside = sandbox.state["gateway_url"], sandbox.state["internal"]["gateway_internal_url"]
    token = sandbox.state["internal"]["service_token"]
    assert gw != inside
    resp = _bare("POST", f"{gw}/internal/canary", json={"weight": 1})
    assert resp.status_code == 404
    assert _bare("POST", f"{inside}/internal/canary", json={"weight": 1}).status_code == 401
    zones = _bare("GET", f"{inside}/internal/zones", headers={INTERNAL_HEADER: token})
    assert zones.status_code == 200 and zones.json()["canary_weight"] == 0.0
    # the public API is not served on the internal listener either
    assert _bare("POST", f"{inside}/v1/query", json={"sql": "SELECT 1"},
                 headers={INTERNAL_HEADER: token}).status_code == 404
    assert sandbox.query("acme", "SELECT id FROM crm.accounts WHERE id = 3").status_code == 200


def test_engines_connectors_and_provider_levers_need_the_service_token(
        sandbox: Sandbox) -> None:
    services = sandbox.state["services"]
    body = {"tenant": "acme", "sql": "SELECT id FROM crm.accounts WHERE id = 4"}
    assert _bare("POST", services["engine-az-a"] + "/query", json=body).status_code == 401
    fetch = {"tenant": "acme", "provider": "crm", "object": "accounts", "limit": 1}
    assert _bare("POST", services["connector-az-a"] + "/fetch", json=fetch).status_code == 401
    crm = sandbox.state["providers"]["crm"]
    assert _bare("POST", crm + "/_control/faults", json={"outage": True}).status_code == 401
    token = sandbox.state["internal"]["service_token"]
    ok = _bare("POST", services["engine-az-a"] + "/query", json=body,
               headers={INTERNAL_HEADER: token})
    assert ok.status_code == 200 and ok.json()["rows"] == [{"id": 4}]
    assert _bare("GET", services["engine-az-a"] + "/health").status_code == 200


def test_redis_and_postgres_need_passwords(sandbox: Sandbox) -> None:
    anonymous = redis.Redis(port=sandbox.state["redis"]["port"], socket_timeout=5)
    with pytest.raises(redis.AuthenticationError):
        anonymous.ping()
    anonymous.close()
    port = sandbox.state["postgres"]["primary"]["port"]
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres",
                        password="not-the-password", connect_timeout=5)
    with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres",
                         password=sandbox.state["internal"]["pg_password"]) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
