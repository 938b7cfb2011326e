"""The shared core: the schema split by noun, re-exported whole by ``labcore.scenario``."""

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import labcore.scenario

ROOT = Path(__file__).resolve().parent.parent

NOUNS = ("run", "topology", "workload", "faults", "mitigations", "releases", "checks", "spec")


@pytest.mark.parametrize("noun", NOUNS)
def test_each_noun_module_is_re_exported_by_the_package(noun: str) -> None:
    module = importlib.import_module(f"labcore.scenario.{noun}")
    public = [n for n in module.__all__ if not n.startswith("check_")]
    missing = [n for n in public if getattr(labcore.scenario, n, None) is not getattr(module, n)]
    assert not missing, f"labcore.scenario does not re-export {missing} from {noun}"
    assert set(public) <= set(labcore.scenario.__all__)


# --------------------------------------------------------------------------- the registry

def test_metric_key_is_bare_for_run_and_at_scope_otherwise() -> None:
    from labcore.registry import metric_key, split_key

    assert metric_key("latency_p95", "run") == "latency_p95"
    assert metric_key("latency_p95", "outside_recovery") == "latency_p95@outside_recovery"
    assert split_key("latency_p95@outside_recovery") == ("latency_p95", "outside_recovery")
    assert split_key("tenant.acme.error_rate") == ("tenant.acme.error_rate", "run")


def test_registry_knows_parametrised_names_and_refuses_the_rest() -> None:
    from labcore.registry import lookup, problem

    assert lookup("tenant.acme.latency_p95").name == "tenant.<tenant>.latency_p95"
    assert lookup("errors.rate_limited").name == "errors.<cause>"
    assert lookup("gateway.utilization").name == "<tier>.utilization"
    assert lookup("engine.utilization").name == "engine.utilization"  # chaos observes it
    assert lookup("mitigation.user_cap.at").name == "mitigation.<kind>.at"
    assert lookup("errors.bogus") is None and lookup("latency_p59") is None
    assert "latency_p95" in problem("latency_p59", "run")
    assert "outside_recovery" in problem("latency_p95", "outside_recovry")
    assert "whole-run fact" in problem("rto_seconds", "before_fault")
    assert problem("latency_p95", "outside_recovery") is None


def test_runner_observability_comes_from_the_registry() -> None:
    from labcore.registry import not_observed_reason

    assert not_observed_reason("latency_p95", "run", "chaos") is None
    # The chaos load's client windows are window facts: every scope, as Locust's (issue 18).
    assert not_observed_reason("latency_p95", "outside_recovery", "chaos") is None
    # The stand-in's worker pools report their slot-seconds; the gateway has none.
    assert not_observed_reason("engine.utilization", "before_fault", "chaos") is None
    assert not_observed_reason("gateway.utilization", "run", "chaos") is not None
    assert not_observed_reason("engine.utilization", "run", "locust") is not None
    assert not_observed_reason("loadgen.late", "run", "chaos") is not None
    assert not_observed_reason("incident.latency_p95", "run", "chaos") is None
    # The stand-in's connector counters, read per window (issue 18); not its provider calls.
    assert not_observed_reason("incident.connector.fetches_per_key", "run", "chaos") is None
    assert not_observed_reason("incident.connector.calls_per_key", "run", "chaos") is not None
    # The stand-in's canary analysis: its decision, time and exposure (issue 18).
    assert not_observed_reason("canary.rolled_back", "run", "chaos") is None
    assert not_observed_reason("canary.rolled_back", "run", "locust") is not None
    assert not_observed_reason("engine.utilization", "run", "locust") is not None
    assert not_observed_reason("rto_seconds", "run", "locust", faults_applied=False)
    assert not_observed_reason("rto_seconds", "run", "locust", faults_applied=True) is None
    assert not_observed_reason("loadgen.late", "run", "sim") is not None


PROFILED = ("az_loss", "rate_limit_flood_mitigated", "cache_stampede_mitigated",
            "auth_failure_mitigated", "blue_green_cutover", "canary_bad_release",
            "retry_storm_mitigated", "regional_failover_snapshot_rpo")


@pytest.mark.parametrize("name", PROFILED)
def test_every_metric_the_simulator_computes_is_in_the_registry(name: str) -> None:
    from labcore.registry import lookup
    from sim import compute_metrics, read_scenario, simulate

    scenario = read_scenario(ROOT / "scenarios" / f"{name}.yaml", "standin").scenario
    metrics = compute_metrics(simulate(scenario, 1))
    assert [k for k in metrics if lookup(k) is None] == []


def test_docs_table_lists_every_metric() -> None:
    from labcore.registry import METRICS, markdown_table

    table = markdown_table()
    assert all(f"`{m.name}`" in table for m in METRICS)


# --------------------------------------------------------------------------- the RTO rule

def test_one_rto_rule_for_the_simulator_and_the_chaos_extension() -> None:
    """chaosomnisql.slo.recovery_time is labcore's rule, window for window: every sequence
    of up to 8 good/bad windows gives the index the simulator's rule gives."""
    import itertools

    from chaosomnisql.slo import recovery_time

    from labcore.metrics import sustain_windows, sustained_from

    assert sustain_windows(120, 10) == 12 and sustain_windows(5, 10) == 1
    for n in range(9):
        for good in itertools.product((False, True), repeat=n):
            index = sustained_from(list(good), 3)
            expected = None if index is None else index * 2.0
            assert recovery_time(list(good), window=2.0, sustain=6.0) == expected
            if index is not None:
                assert all(good[index:index + 3]) and not any(
                    all(good[i:i + 3]) for i in range(index))


def _windows_result(fault: float, window: float, sustain: float, n: int) -> Any:
    from types import SimpleNamespace
    scenario = SimpleNamespace(run=SimpleNamespace(window=window),
                               slo=SimpleNamespace(sustain=sustain))
    return SimpleNamespace(marks=(SimpleNamespace(start=fault),), scenario=scenario,
                           arrays={"start": np.arange(n) * window})


def test_the_quiet_part_of_the_window_before_the_fault_is_not_recovery() -> None:
    """A fault at 15 s inside the 10 s window [10, 20): that window meeting the SLO shows the
    fault had not bitten yet, not that the system recovered (a chaos run's windows start
    with its load, not with its fault; CI once saw RTO 0 for a flood the victims never
    recovered from)."""
    from labcore.metrics import recovery

    result = _windows_result(fault=15.0, window=10.0, sustain=8.0, n=6)

    def rto(*good: bool) -> float | None:
        return recovery(result, meets=np.array(good)).rto

    assert rto(True, True, False, False, False, False) is None
    assert rto(True, True, True, True, True, True) == 0.0  # a harmless fault
    assert rto(True, True, True, False, False, False) == 0.0  # [15, 30) holds 15 s >= 8 s
    assert rto(True, True, False, True, False, False) == 15.0  # from [30, 40)
    assert rto(True, False, True, True, False, False) == 5.0  # from [20, 30)
    # A fault on a window's start: that window is all fault, one window of 10 s is enough.
    aligned = _windows_result(fault=20.0, window=10.0, sustain=8.0, n=6)
    assert recovery(aligned, meets=np.array([True, True, True, False, False, False])).rto == 0.0


def test_the_rto_rule_holds_the_slo_for_sustain_from_the_fault_on() -> None:
    """Every sequence of 7 windows of 2 s, faults at 6 offsets, sustains of 1-5 s: the
    recovery found is the first window start (or the fault) from which good windows cover
    ``sustain`` seconds counted from the fault on, checked by a direct search over times."""
    import itertools

    from labcore.metrics import recovery

    window, n = 2.0, 7
    for fault, sustain in itertools.product((2.0, 2.5, 3.0, 3.9, 4.0, 5.5), (1.0, 2.0, 4.5, 5.0)):
        result = _windows_result(fault, window, sustain, n)
        for good in itertools.product((False, True), repeat=n):
            expected = None
            for i in range(n):
                if (i + 1) * window <= fault:
                    continue  # over before the fault
                held, j = 0.0, i
                while j < n and good[j] and held < sustain - 1e-9:
                    held = (j + 1) * window - max(i * window, fault)
                    j += 1
                if held >= sustain - 1e-9:
                    expected = max(i * window, fault)
                    break
            found = recovery(result, meets=np.array(good)).recovered_at
            assert found == expected, (fault, sustain, good)


# --------------------------------------------------------------------------- pre-flight

def _typo_scenario(tmp_path: Path, metric: str = "latency_p59", over: str = "run") -> Path:
    text = (ROOT / "scenarios" / "baseline.yaml").read_text()
    text = text.replace("metric: latency_p95, op", f"metric: {metric}, over: {over}, op")
    path = tmp_path / "typo.yaml"
    path.write_text(text)
    return path


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, ln in enumerate(path.read_text().splitlines(), 1) if needle in ln)


def test_validate_refuses_an_unknown_metric_with_file_line_and_nearest_names(
        tmp_path: Path) -> None:
    import subprocess
    import sys

    path = _typo_scenario(tmp_path)
    for command in (["validate", str(path)], ["run", str(path), "--out", str(tmp_path / "o")]):
        proc = subprocess.run([sys.executable, "-m", "sim", *command], cwd=ROOT,
                              capture_output=True, text=True)
        assert proc.returncode == 2, proc.stderr
        line = _line_of(path, "latency_p59")
        assert f"typo.yaml:{line}: checks.0.metric: unknown metric 'latency_p59'" in proc.stderr
        assert "latency_p95" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()  # refused before the run, not after it


def test_validate_refuses_an_unknown_scope_and_a_check_the_runner_cannot_observe(
        tmp_path: Path) -> None:
    from sim.cli import main

    assert main(["validate", str(_typo_scenario(tmp_path, "latency_p95", "outside_recovry"))]) == 2
    baseline = str(ROOT / "scenarios" / "baseline.yaml")
    assert main(["validate", baseline]) == 0
    assert main(["validate", "--runner", "locust", baseline]) == 2  # engine.utilization


def test_the_chaos_and_locust_runners_refuse_before_they_start(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from chaosomnisql.cli import main as chaos_main

    from labcore.scenario_file import ScenarioError
    from loadtests.session import build_session

    path = _typo_scenario(tmp_path)
    experiment = tmp_path / "exp.yaml"
    experiment.write_text((ROOT / "chaos" / "experiments" / "az_loss.yaml").read_text()
                          .replace("scenarios/az_loss.yaml", str(path)))
    (tmp_path / "state.json").write_text('{"tenants": {}}')
    assert chaos_main(["run", str(experiment), "--dir", str(tmp_path)]) == 2
    options = SimpleNamespace(scenario=str(path), scenario_profile="", scenario_set=[],
                              inject_faults=False, faults_external=False)
    with pytest.raises(ScenarioError, match="latency_p59.*did you mean"):
        build_session(options, None)


# --------------------------------------------------------------------------- sandbox client

def test_one_allowlist_for_every_runner() -> None:
    from labcore.sandbox_client import SandboxError, allowed_hosts, check_url

    assert allowed_hosts(environ={}) == {"127.0.0.1", "localhost", "::1"}
    allowed = allowed_hosts("a.example, B.example", environ={"OMNISQL_ALLOWED_HOSTS": "c.example"})
    assert {"a.example", "b.example", "c.example"} <= allowed
    with pytest.warns(DeprecationWarning):
        assert "d.example" in allowed_hosts(environ={"OMNISQL_LOADTEST_ALLOWED_HOSTS": "d.example"})
    assert check_url("http://127.0.0.1:9/x/", allowed) == "http://127.0.0.1:9/x"
    with pytest.raises(SandboxError, match="not on the allowlist"):
        check_url("https://prod.example/x", allowed)


def test_the_client_sends_the_admin_token_only_when_the_state_has_one(tmp_path: Path) -> None:
    import http.server
    import json
    import threading

    from labcore.sandbox_client import ApiError, SandboxClient, read_state

    seen: list[str | None] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            seen.append(self.headers.get("Authorization"))
            status = 200 if self.path == "/faults/reset" else 404
            body = {"ok": True} if status == 200 else {"error": {"code": "NOT_FOUND"}}
            self.send_response(status)
            self.end_headers()
            self.wfile.write(json.dumps(body).encode())

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        for token in (None, "s3cret"):
            state = {"admin_url": url, **({"admin_token": token} if token else {})}
            (tmp_path / "state.json").write_text(json.dumps(state))
            client = SandboxClient.from_state(read_state(tmp_path), frozenset({"127.0.0.1"}),
                                              timeout=5.0)
            assert "s3cret" not in repr(client)
            assert client.call("POST", "/faults/reset") == {"ok": True}
            with pytest.raises(ApiError, match="HTTP 404 NOT_FOUND"):
                client.call("POST", "/faults/nothing")
    finally:
        server.shutdown()
        server.server_close()
    assert seen == [None, None, "Bearer s3cret", "Bearer s3cret"]


@pytest.mark.parametrize("name", ["regional_failover", "cache_stampede"])
def test_saved_facts_read_back_to_the_same_metrics(name: str, tmp_path: Path) -> None:
    """``facts.npz`` is how a real runner hands its windows to ``sim conform``: what is read
    back must give every metric the run itself gives, marks and RPO losses included."""
    import math

    from labcore.facts import load_facts, save_facts
    from sim import compute_metrics, read_scenario, simulate

    scenario = read_scenario(ROOT / "scenarios" / f"{name}.yaml", "standin").scenario
    run = simulate(scenario, 3)
    save_facts(tmp_path / "facts.npz", run)
    back = load_facts(tmp_path / "facts.npz", scenario)
    assert back.marks == run.marks and back.rpo_losses == run.rpo_losses
    assert back.tenants == run.tenants and back.seed == 3
    want, got = compute_metrics(run), compute_metrics(back)
    assert want.keys() == got.keys()
    for key, value in want.items():
        same = got[key] == value or (isinstance(value, float) and math.isnan(value)
                                     and math.isnan(got[key]))  # type: ignore[arg-type]
        assert same, (key, value, got[key])
