"""Chaos acts out a scenario's provider ``latency_injection`` (retry_storm's trigger) through
the stand-in's fault API, as Locust's fault replay does (no sandbox here: the admin API is
faked). Without :func:`inject_provider_latency` no experiment could slow a provider down."""

from __future__ import annotations

from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed
from chaosomnisql import actions, ledger

from loadtests.faults import fault_actions
from sim import read_scenario

SOURCE = "scenarios/retry_storm.yaml"
SCENARIO = read_scenario(SOURCE, profile="standin").scenario


def _config(**more: str) -> dict[str, Any]:
    return {"omnisql_scenario": SOURCE, "omnisql_profile": "standin", **more}


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, Any]]:
    """The admin API's calls, answered with an empty object."""
    seen: list[tuple[str, str, Any]] = []

    def admin(method: str, path: str, configuration: Any, body: Any = None) -> Any:
        seen.append((method, path, body))
        return {}

    monkeypatch.setattr(actions, "admin_call", admin)
    ledger.reset()
    return seen


def test_the_latency_is_the_scenarios_factor_as_locust_injects_it(
        calls: list[tuple[str, str, Any]]) -> None:
    (fault,) = SCENARIO.faults
    out = actions.inject_provider_latency("crm", fault.factor, configuration=_config())
    (method, path, body) = calls[0]
    locust = [a for a in fault_actions(SCENARIO) if a.method == "POST"]
    assert (method, path) == ("POST", locust[0].path) == ("POST", "/faults/provider/crm")
    assert body["latency_ms"] == pytest.approx(locust[0].body["latency_ms"])
    assert body["latency_ms"] > 100  # factor 3 of a provider whose mean is above 50 ms
    assert body["lease_seconds"] == out["seconds"] == fault.duration  # ends by itself on time
    (record,) = ledger.LEDGER.faults
    assert (record.kind, record.target, record.restored_at) == (
        "latency_injection", "provider:crm", None)


def test_short_mode_shortens_the_fault_and_unknown_providers_are_refused(
        calls: list[tuple[str, str, Any]]) -> None:
    actions.inject_provider_latency("crm", 3.0, configuration=_config(omnisql_fault_seconds="20"))
    assert calls[0][2]["lease_seconds"] == 20.0
    with pytest.raises(ActivityFailed, match="nowhere"):
        actions.inject_provider_latency("nowhere", 3.0, configuration=_config())


def test_the_end_is_recorded_at_the_leases_end_and_the_fault_removed(
        calls: list[tuple[str, str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    now = [500.0]
    monkeypatch.setattr(actions.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(actions.time, "sleep", lambda s: now.__setitem__(0, now[0] + s))
    monkeypatch.setattr(ledger.time, "monotonic", lambda: now[0])
    actions.inject_provider_latency("crm", 3.0, configuration=_config(omnisql_fault_seconds="30"))
    now[0] += 5.0  # the method measured for a while
    assert actions.end_provider_latency("crm", configuration=_config()) == {
        "ended": True, "answer": {}}
    assert calls[-1] == ("DELETE", "/faults/provider/crm", None)
    assert now[0] == 530.0 and ledger.LEDGER.faults[0].restored_at == 530.0
    assert actions.end_provider_latency("crm", configuration=_config()) == {"ended": False}
