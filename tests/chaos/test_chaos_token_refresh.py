"""Chaos acts out SOP-103 as the scenario states it and measures how long it took (no
sandbox here: the admin API is faked).

``bulk_refresh_tokens`` waits the operator's delay after the revocation, asks the target
for the paced refresh with the scenario's rate and tokens per tenant, waits for it and
reports ``mitigation.token_refresh.in_effect_seconds``; the figure reaches the run's window
facts and the one judge, so auth_failure_mitigated's "bulk refresh done within 5 min" is
measured by chaos.
"""

from __future__ import annotations

from typing import Any

import pytest
from chaosomnisql import ledger, token_refresh
from chaosomnisql.cli import SHORT_MODE, default_timeout
from chaosomnisql.token_refresh import bulk_refresh_tokens, refresh_measured
from chaosomnisql.verdict import judge_checks
from chaosomnisql.windows import RunWindows, measured_metrics

from labcore.registry import not_observed_reason
from sim import read_scenario

SOURCE = "scenarios/auth_failure_mitigated.yaml"
SCENARIO = read_scenario(SOURCE, profile="standin").scenario
CHECK = "mitigation.token_refresh.in_effect_seconds"
DONE = {"provider": "crm", "state": "done", "in_effect_seconds": 160.4, "tokens": 800,
        "error": None}


def _config(**more: str) -> dict[str, Any]:
    return {"omnisql_scenario": SOURCE, "omnisql_profile": "standin", **more}


class FakeAdmin:
    """The admin API: a paced job that runs for ``polls`` GETs, then is done."""

    def __init__(self, polls: int = 2, final: dict[str, Any] | None = None) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.polls, self.final = polls, final or DONE

    def __call__(self, method: str, path: str, configuration: Any, body: Any = None) -> Any:
        self.calls.append((method, path, body))
        if method == "POST":
            return {"state": "running", "expected_seconds": 160.0}
        self.polls -= 1
        return {"jobs": {"crm": {"state": "running"} if self.polls > 0 else self.final}}


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """A fake monotonic clock that ``time.sleep`` advances; the revocation at t=1000."""
    now = [1000.0]
    monkeypatch.setattr(token_refresh.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(token_refresh.time, "sleep", lambda s: now.__setitem__(0, now[0] + s))
    ledger.reset()
    ledger.LEDGER.injected("token_revocation", "crm")
    return now


def test_chaos_observes_the_refresh_time_not_other_mitigations() -> None:
    assert not_observed_reason(CHECK, "run", "chaos") is None
    assert not_observed_reason("token_refresh.tokens", "run", "chaos") is None
    assert not_observed_reason("mitigation.cache_scale.in_effect_seconds", "run",
                               "chaos") is not None
    assert not_observed_reason(CHECK, "run", "locust") is not None


def test_the_refresh_starts_after_the_operators_delay_with_the_scenarios_pace(
        clock: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    admin = FakeAdmin()
    posted: list[float] = []
    real = admin.__call__

    def call(method: str, path: str, configuration: Any, body: Any = None) -> Any:
        if method == "POST":
            posted.append(clock[0])
        return real(method, path, configuration, body)

    monkeypatch.setattr(token_refresh, "admin_call", call)
    out = bulk_refresh_tokens("crm", 5.0, 200, 180.0, configuration=_config())
    assert posted == [pytest.approx(1180.0)]  # the revocation + operator_delay
    assert admin.calls[0] == ("POST", "/admin/tokens/refresh",
                              {"provider": "crm", "rate": 5.0, "tokens_per_tenant": 200})
    assert out["measured"] == {CHECK: 160.4, "token_refresh.tokens": 800.0}
    assert ledger.LEDGER.running["run_facts"][CHECK] == 160.4
    assert out["note"] is None


def test_a_shortened_refresh_is_not_the_scenarios_and_measures_nothing(
        clock: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    admin = FakeAdmin(final={**DONE, "in_effect_seconds": 8.1, "tokens": 40})
    monkeypatch.setattr(token_refresh, "admin_call", admin)
    config = _config(omnisql_operator_delay="5", omnisql_refresh_tokens_per_tenant="10")
    out = bulk_refresh_tokens("crm", 5.0, 200, 180.0, configuration=config)
    assert admin.calls[0][2]["tokens_per_tenant"] == 10
    assert out["measured"] == {} and "not measured" in out["note"]
    journal = {"status": "completed", "run": [
        {"activity": {"provider": {"func": "bulk_refresh_tokens"}}, "status": "succeeded",
         "output": out}]}
    assert CHECK in {s["metric"] for s in judge_checks(journal, SCENARIO.checks).not_measured}


def test_a_failed_or_unfinished_refresh_is_not_a_measurement() -> None:
    assert refresh_measured(DONE, full=True) == {CHECK: 160.4, "token_refresh.tokens": 800.0}
    assert refresh_measured({**DONE, "state": "running"}, full=True) == {}
    assert refresh_measured({**DONE, "state": "failed"}, full=True) == {}


def test_a_rollback_first_means_no_refresh_is_started(
        clock: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    admin = FakeAdmin()
    monkeypatch.setattr(token_refresh, "admin_call", admin)
    ledger.LEDGER.restored("token_revocation", "crm")  # the rollback's unpaced refresh
    out = bulk_refresh_tokens("crm", 5.0, 200, 180.0, configuration=_config())
    assert out["started"] is False and admin.calls == []


def test_the_refresh_time_reaches_the_window_facts_and_the_judge() -> None:
    windows = RunWindows(SCENARIO, window=10.0, warmup=10.0, sustain=20.0, origin=0.0)
    for k in range(6):
        for _ in range(20):
            windows.request(k * 10.0 + 5.0, "acme", 0.05, "ok")
    for seconds, passed in ((160.4, True), (301.0, False)):
        facts = windows.facts([], elapsed=60.0, whole={CHECK: seconds})
        assert facts is not None
        got = measured_metrics(facts, SCENARIO.checks)
        assert got[CHECK] == seconds
        journal = {"status": "completed", "run": [], "omnisql_windows": {"measured": got}}
        results = {r.metric: r.passed for r in judge_checks(journal, SCENARIO.checks).results}
        assert results[CHECK] is passed  # "bulk refresh done within 5 min"


def test_the_wrappers_limit_covers_delay_refresh_and_sustain() -> None:
    (m,) = SCENARIO.mitigations
    refresh = m.operator_delay + len(SCENARIO.workload.tenants) * m.tokens_per_tenant / m.rate
    assert default_timeout(SCENARIO, {}) > SCENARIO.run.warmup + refresh + SCENARIO.slo.sustain
    assert default_timeout(SCENARIO, dict(SHORT_MODE)) > 10 + 5 + 4 * 10 / m.rate + 8
