"""A short chaos run of canary_bad_release on the stand-in: the summary carries the canary's
own checks as measured from the stand-in's analysis (issue 18), not "not measured"."""

from __future__ import annotations

import pytest
from chaos_helpers import EXPERIMENTS, ChaosSandbox, restored

pytestmark = [pytest.mark.sandbox, pytest.mark.timeout(400)]

CANARY = ("canary.rolled_back", "canary.decision_seconds", "canary.exposed_requests")


def test_the_chaos_summary_measures_the_canarys_decision(chaos_sandbox: ChaosSandbox) -> None:
    # The scenario's own 30 s warm-up (short mode's 10 s leaves the cache cold: with the
    # scenario's provider latencies a 4 s stats window's P95 can then exceed the SLO), the
    # release after it and the run long enough for short mode's 60 s decision wait.
    env = {"OMNISQL_WARMUP": "30", "OMNISQL_FAULT_AT": "35", "OMNISQL_LOAD_SECONDS": "105"}
    code, out, journal = chaos_sandbox.run(EXPERIMENTS / "canary_bad_release.yaml",
                                           env=env, timeout=330)
    assert journal is not None, out[-3000:]
    assert journal["steady_states"]["before"]["steady_state_met"], out[-3000:]
    probe = next(e for e in journal["run"]
                 if e["activity"]["provider"]["func"] == "measure_canary")
    assert probe["status"] == "succeeded", probe
    decision = probe["output"]["decision"]
    assert decision in ("rolled_back", "promoted"), probe["output"]  # short mode: 10 s windows
    targets = {t["metric"]: t for t in journal["omnisql_summary"]["targets"]}
    for metric in CANARY:
        assert targets[metric]["is_measured"], (metric, targets[metric])
        assert targets[metric]["not_measured"] is None
    assert targets["canary.rolled_back"]["measured"] == (1.0 if decision == "rolled_back" else 0.0)
    seconds = targets["canary.decision_seconds"]["measured"]
    assert 10.0 <= seconds <= 65.0 and seconds == probe["output"]["decision_seconds"]
    assert targets["canary.exposed_requests"]["measured"] > 0
    # The same values are in the run's window facts (what `sim conform` reads).
    windows = journal["omnisql_windows"]["measured"]
    assert all(windows[m] == targets[m]["measured"] for m in CANARY)
    assert (code == 0) == journal["omnisql_summary"]["passed"]
    assert restored(chaos_sandbox) == []
