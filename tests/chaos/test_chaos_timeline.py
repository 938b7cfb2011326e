"""The chaos run follows the scenario's timeline (issue 18): the faults at their scenario
``at`` from the load's start, the windows over ``[warmup, duration]``, the recovery watched
no later than the run's end, the run going on until ``run.duration``.

A fake clock stands in for ``time`` (no second really passes) and the gateway's stats are
faked: these tests need no sandbox.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from chaosomnisql import canary, ledger, probes, timeline
from chaosomnisql.verdict import FAULT_FUNCS
from chaosomnisql.windows import RunWindows, fault_marks

from sim import read_scenario

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = sorted((REPO / "chaos" / "experiments").glob("*.yaml"))
ORIGIN = 1000.0  # time.monotonic() at the load's start, on the fake clock


class FakeClock:
    """``time.monotonic``/``time.sleep``/``time.time``: a sleep moves the clock on."""

    def __init__(self, now: float = ORIGIN) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)


def _config(name: str, **overrides: str) -> dict[str, Any]:
    return {"omnisql_scenario": f"scenarios/{name}.yaml", "omnisql_profile": "standin",
            **{f"omnisql_{k}": v for k, v in overrides.items()}}


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The fake clock in every module that waits, and a run whose load started at ORIGIN."""
    fake = FakeClock()
    fake_time = SimpleNamespace(monotonic=fake.monotonic, sleep=fake.sleep, time=fake.monotonic)
    for module in (timeline, probes, ledger, canary):
        monkeypatch.setattr(module, "time", fake_time)
    ledger.reset()
    yield fake
    ledger.LEDGER.running.pop("windows", None)
    ledger.reset()


def _start_run(name: str, **overrides: str) -> RunWindows:
    config = _config(name, **overrides)
    scenario = read_scenario(f"scenarios/{name}.yaml", profile="standin").scenario
    line = timeline.run_timeline(config)
    windows = RunWindows(scenario, scenario.run.window, line.warmup, scenario.slo.sustain,
                         duration=line.duration, origin=ORIGIN)
    ledger.LEDGER.running["windows"] = windows
    return windows


def test_the_timeline_is_the_scenarios_and_short_mode_compresses_it() -> None:
    line = timeline.run_timeline(_config("cache_stampede"))
    assert (line.warmup, line.duration, line.injections) == (180.0, 600.0, (240.0,))
    assert line.hypothesis_at == 240.0 - timeline.HYPOTHESIS_LEAD
    short = timeline.run_timeline(_config("auth_failure", warmup="10", load_seconds="80",
                                          fault_at="15"))
    assert (short.warmup, short.duration, short.injections) == (10.0, 80.0, (15.0,))
    assert short.hypothesis_at == 10.0  # after the warm-up, just before the fault
    canary_line = timeline.run_timeline(_config("canary_bad_release"))
    assert canary_line.injections == (60.0,)  # the release's own time


@pytest.mark.parametrize(("name", "at"), [("auth_failure", 120.0), ("cache_stampede", 240.0),
                                          ("regional_failover", 300.0)])
def test_the_fault_is_injected_at_its_scenario_time_from_the_loads_start(
        clock: FakeClock, name: str, at: float) -> None:
    """The hypothesis ran just before (the load control's wait): the method's
    wait_for_fault sleeps until the scenario's `at`, and the fault's mark is there. Before
    issue 18's fix the injection came right after the warm-up's hypothesis (auth_failure
    at ~30 s instead of 120 s)."""
    windows = _start_run(name)
    clock.now = ORIGIN + timeline.run_timeline(_config(name)).hypothesis_at + 0.4
    out = timeline.wait_for_fault(configuration=_config(name))
    assert out["due_at"] == at and out["late_by"] == 0.0
    ledger.LEDGER.injected("fault", "x")  # the next action injects
    mark = fault_marks(list(ledger.LEDGER.faults), windows.origin)[0]
    assert mark.start == at


def test_a_late_wait_says_so_and_a_fault_after_the_end_is_refused(clock: FakeClock) -> None:
    _start_run("auth_failure")
    clock.now = ORIGIN + 130.0
    assert timeline.wait_for_fault(configuration=_config("auth_failure"))["late_by"] == 10.0
    with pytest.raises(Exception, match="not before the run's end"):
        timeline.wait_for_fault(configuration=_config("auth_failure", fault_at="900"))


def test_the_run_goes_on_until_the_scenarios_duration(clock: FakeClock) -> None:
    _start_run("auth_failure")
    clock.now = ORIGIN + 500.0  # recovered (or given up) early
    out = timeline.run_until_end(configuration=_config("auth_failure"))
    assert out == {"ends_at": 900.0, "waited": 400.0}
    assert clock.now == ORIGIN + 900.0


def _bad_stats(seconds: Any, configuration: Any = None) -> dict[str, Any]:
    return {"requests": 50, "errors": 50, "error_rate": 1.0, "latency_p95": 0.1}


def test_recovery_is_never_watched_past_the_runs_end(clock: FakeClock,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """az_loss at standin: the zone is lost at 120 s of a 300 s run, its RTO target is
    900 s: the probe stops at 300 s, not at 120 + 900 + 120 s, and says the run ended
    (the simulator's "not recovered by the end of the run")."""
    monkeypatch.setattr(probes, "stats", _bad_stats)
    _start_run("az_loss")
    timeline.wait_for_fault(configuration=_config("az_loss"))
    ledger.LEDGER.injected("az_loss", "az-a")
    out = probes.measure_recovery(configuration=_config("az_loss"))
    assert out["rto_seconds"] is None and out["outcome"] == "not recovered by the end of the run"
    assert out["windows"] == 18 and clock.now == ORIGIN + 300.0


def test_recovery_not_seen_within_the_timeout_is_told_apart(
        clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """auth_failure: 600 s target + 120 s sustain from 120 s ends before the 900 s run."""
    monkeypatch.setattr(probes, "stats", _bad_stats)
    _start_run("auth_failure")
    timeline.wait_for_fault(configuration=_config("auth_failure"))
    ledger.LEDGER.injected("token_revocation", "crm")
    out = probes.measure_recovery(configuration=_config("auth_failure"))
    assert out["outcome"] == "not recovered within the timeout"
    assert out["windows"] == 72 and clock.now == ORIGIN + 840.0


def test_an_unreadable_window_is_a_failing_window_not_the_end_of_the_measurement(
        clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """retry_storm_mitigated's 05:03 run: one stats read answered 502 (the gateway was
    saturated) and the probe failed, which interrupted the whole run."""
    reads = iter(range(10_000))

    def flaky(seconds: Any, configuration: Any = None) -> dict[str, Any]:
        if next(reads) in (3, 4):
            raise probes.ActivityFailed("GET /v1/stats?window=10: HTTP 502 UPSTREAM_ERROR")
        return _bad_stats(seconds)

    monkeypatch.setattr(probes, "stats", flaky)
    _start_run("az_loss")
    timeline.wait_for_fault(configuration=_config("az_loss"))
    ledger.LEDGER.injected("az_loss", "az-a")
    out = probes.measure_recovery(configuration=_config("az_loss"))
    assert out["windows"] == 18 and out["rto_seconds"] is None  # watched to the run's end
    assert any(r.startswith("stats unreadable") for m in out["missed"] for r in m), out


def test_the_windows_cover_warmup_to_duration_exactly(clock: FakeClock) -> None:
    """The load ran a few seconds past the end (for the after hypothesis) and the
    rollbacks after it: the window facts still stop at run.duration."""
    windows = _start_run("az_loss")
    for t in range(0, 320):
        windows.request(float(t) + 0.5, "acme", 0.05, "ok")
    facts = windows.facts([], elapsed=330.0)
    assert facts is not None and facts.scenario.run.duration == 300.0
    assert facts.scenario.run.warmup == 30.0
    assert len(facts.arrays["start"]) == 30 and float(facts.arrays["start"][-1]) == 290.0


def _method(path: Path) -> list[dict[str, Any]]:
    method: list[dict[str, Any]] = yaml.safe_load(path.read_text())["method"]
    return method


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_every_experiment_takes_its_timeline_from_the_scenario(path: Path) -> None:
    """Each experiment waits for its fault's scenario time right before injecting it, and
    goes on until the run's end after measuring; the timeline's settings default to the
    scenario (no length or time written in the YAML)."""
    exp = yaml.safe_load(path.read_text())
    config = exp["configuration"]
    for key in ("omnisql_load_seconds", "omnisql_fault_at", "omnisql_warmup"):
        assert config[key]["default"] == "", key  # empty: the scenario's own value
    funcs = [a["provider"].get("func") for a in _method(path)]
    first = next(i for i, f in enumerate(funcs) if f in FAULT_FUNCS)
    assert funcs.count("wait_for_fault") == 1 and funcs[first - 1] == "wait_for_fault"
    assert "arguments" not in _method(path)[first - 1]["provider"]  # the scenario's times
    assert funcs.count("run_until_end") == 1
    end = funcs.index("run_until_end")
    measuring = {"measure_recovery", "measure_canary", "measure_traffic", "wait_tenant_flood"}
    assert all(i < end for i, f in enumerate(funcs) if f in measuring), path.stem
    scenario = read_scenario(REPO / config["omnisql_scenario"], profile="standin").scenario
    line = timeline.scenario_timeline(scenario, lambda key: None)
    assert line.duration == scenario.run.duration
    assert line.injections[0] == (scenario.faults[0].at if scenario.faults
                                  else scenario.release.at)
