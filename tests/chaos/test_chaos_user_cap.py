"""Chaos acts out SOP-101's cap as rate_limit_flood_mitigated states it: the scenario's
operator delay after the flood started, then the cap through the admin API (no sandbox
here: the admin API is faked). Without :func:`cap_users_after_delay` the mitigated flood
would be judged with no cap at all."""

from __future__ import annotations

from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed
from chaosomnisql import actions, ledger, user_cap
from chaosomnisql.user_cap import cap_users_after_delay

SOURCE = "scenarios/rate_limit_flood_mitigated.yaml"


def _config(source: str = SOURCE, **more: str) -> dict[str, Any]:
    return {"omnisql_scenario": source, "omnisql_profile": "standin", **more}


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """A fake monotonic clock that ``time.sleep`` advances; the flood started at t=1000;
    the admin calls are recorded with the time they were made."""
    now: list[Any] = [1000.0, []]
    monkeypatch.setattr(user_cap.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(user_cap.time, "sleep", lambda s: now.__setitem__(0, now[0] + s))
    monkeypatch.setattr(ledger.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(actions, "admin_call", lambda method, path, configuration, body=None:
                        now[1].append((now[0], method, path, body)) or {"ok": True})
    ledger.reset()
    ledger.LEDGER.injected("traffic_surge", "umbrella")
    return now


def test_the_cap_comes_after_the_operators_delay_and_is_lifted_as_the_scenario_says(
        clock: list[Any]) -> None:
    """At `standin` the cap holds 5 min (2m + 2m delay + 5m, within the 12-min run)."""
    out = cap_users_after_delay("umbrella", "*", 1, 120.0, configuration=_config())
    assert out["applied"] is True and out["lifted"] is True and out["operator_delay"] == 120.0
    assert clock[1] == [
        (1120.0, "POST", "/admin/caps", {"tenant": "umbrella", "user": "*", "max_concurrency": 1}),
        (1420.0, "POST", "/admin/caps",
         {"tenant": "umbrella", "user": "*", "max_concurrency": None})]


def test_a_run_that_ends_first_leaves_the_lift_to_the_rollbacks(
        clock: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(user_cap, "run_end", lambda configuration: 1300.0)
    out = cap_users_after_delay("umbrella", "*", 1, 120.0,
                                configuration=_config(omnisql_operator_delay="5"))
    assert out["lifted"] is False and [c[:3] for c in clock[1]] == [(1005.0, "POST", "/admin/caps")]


def test_a_stopped_flood_is_not_capped_and_no_flood_is_refused(clock: list[Any]) -> None:
    ledger.LEDGER.restored("traffic_surge", "umbrella")  # a rollback stopped it
    assert cap_users_after_delay("umbrella", "*", 1, 120.0, configuration=_config()) == {
        "applied": False, "operator_delay": 120.0}
    with pytest.raises(ActivityFailed, match="no flood from 'acme'"):
        cap_users_after_delay("acme", "*", 1, 120.0, configuration=_config())
    assert clock[1] == []


def test_the_stand_ins_admin_api_takes_the_tenants_cap_on_every_user(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``POST /admin/caps`` with ``user: "*"`` (the scenario's user_cap) is written as the
    tenant's cap, the one the directory falls back to; it answered 400 before (the short
    run of 2026-11-30 00:11 UTC); a name that is neither is still refused."""
    import asyncio
    from types import SimpleNamespace

    from sandbox.admin import actions as admin
    from sandbox.errors import ApiError

    written: list[tuple[Any, ...]] = []
    monkeypatch.setattr(admin, "_write_cap", lambda *args: written.append(args[1:]))

    async def post(url: str, body: Any = None) -> Any:
        return {}

    plane = SimpleNamespace(state={"tenants": {"umbrella": {}}}, nodes=[SimpleNamespace(port=1)],
                            gateway_internal="http://gw", post=post)
    body = {"tenant": "umbrella", "user": "*", "max_concurrency": 1}
    assert asyncio.run(admin.set_cap(plane, body)) == body  # type: ignore[arg-type]
    assert written == [("umbrella", "*", 1)]
    with pytest.raises(ApiError, match="user name"):
        asyncio.run(admin.set_cap(plane, {**body, "user": "a b"}))  # type: ignore[arg-type]
