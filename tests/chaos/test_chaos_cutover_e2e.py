"""A short chaos run of blue_green_cutover on the stand-in: the summary judges the cutover's
own checks as measured by the stand-in's gateway (issue 18), not "not measured".

One run in the wrapper's short mode (an 80 s run, the release at 15 s, 4 s windows): about
90 s of wall time. The scenario's drain (30 s) is longer than the gateway's timeout (5 s),
which ends every attempt, so nothing can be cut whatever the machine's load.
"""

from __future__ import annotations

import pytest
from chaos_helpers import EXPERIMENTS, ChaosSandbox, restored

pytestmark = [pytest.mark.sandbox, pytest.mark.timeout(300)]

CHECKED = ("cutover.dropped_requests", "cutover.drain_seconds")


def test_the_chaos_summary_judges_the_cutovers_checks(chaos_sandbox: ChaosSandbox) -> None:
    code, out, journal = chaos_sandbox.run(EXPERIMENTS / "blue_green_cutover.yaml",
                                           timeout=280)
    assert journal is not None, out[-3000:]
    assert journal["steady_states"]["before"]["steady_state_met"], out[-3000:]
    acts = {e["activity"]["name"]: e for e in journal["run"]}
    switched = acts["cut-over-release"]["output"]
    assert switched["active"] == "green" and switched["version"] == "v2", switched
    assert switched["drain_timeout"] == 30.0
    probe = acts["measure-cutover"]
    assert probe["status"] == "succeeded" and probe["output"]["phase"] == "done", probe
    measured = probe["output"]["measured"]
    assert measured["cutover.inflight_at_switch"] == switched["inflight_at_switch"]
    targets = {t["metric"]: t for t in journal["omnisql_summary"]["targets"]}
    for metric in CHECKED:
        assert targets[metric]["is_measured"], (metric, targets[metric])
        assert targets[metric]["not_measured"] is None
        assert targets[metric]["measured"] == measured[metric]
        assert journal["omnisql_windows"]["measured"][metric] == measured[metric]
    assert measured["cutover.dropped_requests"] == 0.0
    drained = measured["cutover.drain_seconds"]
    assert drained is not None and 0.0 <= drained <= 30.0
    assert (code == 0) == journal["omnisql_summary"]["passed"]
    # The rollback put blue back in service on v1.
    release = chaos_sandbox.get("/admin/release")
    assert release["active"] == "blue" and release["phase"] == "idle", release
    assert restored(chaos_sandbox) == []
