"""Fault resets restore everything a run changed (the sandbox; bounded).

- ``reset_faults`` (every experiment's last rollback) renews the tokens the run revoked
  and did not refresh: the fault API's reset does not, so the next run began with 401s.
- regional_failover's after-hypothesis no longer fails by construction: the stand-in
  listed the old primary as killed until the rollback's reset, after the hypothesis.
"""

from __future__ import annotations

import random
from typing import Any

import httpx
import pytest
from chaos_helpers import EXPERIMENTS, ChaosSandbox
from chaosomnisql import actions, ledger

from labcore.workload import CATALOG_ROWS, key_sql

pytestmark = [pytest.mark.sandbox, pytest.mark.timeout(300)]


def _crm_status(sb: ChaosSandbox) -> int:
    """One crm query that misses the cache (flushed first)."""
    sb.post("/admin/cache/invalidate", {})
    key = next(iter(sb.state["tenants"].values()))["api_key"]
    sql = key_sql("crm.accounts", random.randrange(CATALOG_ROWS["crm.accounts"]))
    resp = httpx.post(sb.state["gateway_url"] + "/v1/query", json={"sql": sql}, timeout=10.0,
                      headers={"Authorization": f"Bearer {key}", "X-OmniSQL-User": "u1"})
    return resp.status_code


def test_reset_faults_renews_the_tokens_the_run_revoked(chaos_sandbox: ChaosSandbox) -> None:
    config: dict[str, Any] = {"omnisql_target": "sandbox",
                              "omnisql_sandbox_dir": str(chaos_sandbox.root)}
    ledger.reset()
    actions.expire_tokens("crm", 1.0, configuration=config)
    try:
        assert _crm_status(chaos_sandbox) != 200  # revoked: crm misses fail
    finally:
        actions.reset_faults(configuration=config)
    assert _crm_status(chaos_sandbox) == 200
    assert ledger.LEDGER.faults[-1].restored_at is not None


def test_regional_failovers_after_hypothesis_judges_the_failed_over_system(
        chaos_sandbox: ChaosSandbox) -> None:
    code, out, journal = chaos_sandbox.run(EXPERIMENTS / "regional_failover.yaml")
    assert journal is not None, out[-3000:]
    ended = next(e for e in journal["run"] if e["activity"]["name"] == "end-metadata-kill")
    assert ended["status"] == "succeeded" and ended["output"] == {"ended": True}, out[-3000:]
    after = journal["steady_states"]["after"]
    probes = {p["activity"]["name"]: p["tolerance_met"] for p in after["probes"]}
    assert probes["nothing-injected"], out[-3000:]
    assert (code == 0) == journal["omnisql_summary"]["passed"]
