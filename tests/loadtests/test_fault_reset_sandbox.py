"""A Locust run's fault reset leaves no revoked token behind (the sandbox, a few seconds).

The fault API's ``POST /faults/reset`` does not renew tokens, so before the fix the run
after a ``token_revocation`` started with 401s from the provider. The runner's reset now
asks for a bulk refresh of every provider it revoked.
"""

from __future__ import annotations

import random

import httpx
import pytest
from conftest import Standin

from labcore.workload import CATALOG_ROWS, key_sql
from loadtests.faults import Action, FaultRunner

pytestmark = [pytest.mark.sandbox, pytest.mark.timeout(120)]


def _crm_status(standin: Standin) -> tuple[int, str | None]:
    """One crm query that misses the cache (flushed first): (status, error code)."""
    info = next(iter(standin.state["tenants"].values()))
    httpx.post(standin.state["admin_url"] + "/admin/cache/invalidate", json={}, timeout=10.0,
               headers={"Authorization": f"Bearer {standin.state['admin_token']}"},
               ).raise_for_status()
    sql = key_sql("crm.accounts", random.randrange(CATALOG_ROWS["crm.accounts"]))
    resp = httpx.post(standin.state["gateway_url"] + "/v1/query", json={"sql": sql},
                      timeout=10.0, headers={"Authorization": f"Bearer {info['api_key']}",
                                             "X-OmniSQL-User": "u1"})
    code = None if resp.status_code == 200 else (resp.json().get("error") or {}).get("code")
    return resp.status_code, code


def test_the_reset_after_a_token_revocation_leaves_crm_answering(standin: Standin) -> None:
    expire = Action(0.0, "POST", "/faults/tokens/expire", {"provider": "crm", "fraction": 1.0})
    runner = FaultRunner(standin.state["admin_url"], [expire],
                         admin_token=standin.state["admin_token"])
    runner.run(lambda: 0.0)
    assert runner.failed == []
    assert _crm_status(standin)[0] != 200  # the revocation bites: crm misses fail
    assert runner.reset() == 200
    assert _crm_status(standin) == (200, None)  # the next run starts clean


def test_the_fault_apis_reset_alone_leaves_the_tokens_revoked(standin: Standin) -> None:
    """Why the runner refreshes: the stand-in's reset does not (if it ever does, this
    test says the runner's refresh has become redundant, not wrong)."""
    runner = FaultRunner(standin.state["admin_url"], [],
                         admin_token=standin.state["admin_token"])
    runner.call(runner.admin_url, Action(0.0, "POST", "/faults/tokens/expire",
                                         {"provider": "crm", "fraction": 1.0}))
    try:
        runner.call(runner.admin_url, Action(0.0, "POST", "/faults/reset"))
        status = _crm_status(standin)
    finally:
        runner.call(runner.admin_url, Action(0.0, "POST", "/admin/tokens/refresh",
                                             {"provider": "crm"}))
    if status[0] == 200:
        pytest.skip("the stand-in's /faults/reset now renews tokens itself")
    assert status[0] in (401, 502), status
