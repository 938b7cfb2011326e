"""The Prometheus rules as code: `promtool check rules`, `promtool test rules`, and the
thresholds in the rules against the scenarios' SLO and canary analysis."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from labcore.scenario_file import load_scenario

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "observability" / "rules"
RULE_FILES = sorted(RULES.glob("*.yml"))
RULE_TESTS = sorted((RULES / "tests").glob("*_test.yml"))
SCENARIOS = sorted((REPO / "scenarios").glob("*.yaml"))


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    assert exe, "promtool is missing: scripts/test.sh installs Debian's prometheus package"
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=120,
                          cwd=RULES, check=False)


def _rules() -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                out[rule.get("record") or rule["alert"]] = rule
    return out


def test_rule_files_and_tests_exist() -> None:
    assert [p.name for p in RULE_FILES] == ["canary.yml", "sli.yml", "slo.yml"]
    assert {p.name for p in RULE_TESTS} == {"canary_test.yml", "sli_test.yml", "slo_test.yml"}


def test_promtool_check_rules() -> None:
    done = _promtool("check", "rules", *map(str, RULE_FILES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == len(RULE_FILES)


@pytest.mark.parametrize("path", RULE_TESTS, ids=lambda p: p.name)
def test_promtool_test_rules(path: Path) -> None:
    done = _promtool("test", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_promtool_test_rules_fails_on_a_wrong_expectation(tmp_path: Path) -> None:
    # The unit tests can fail: the same file with one expected value changed does.
    text = (RULES / "tests" / "canary_test.yml").read_text()
    wrong = text.replace("value: 0.015}", "value: 0.016}")
    assert wrong != text
    (tmp_path / "rules").mkdir()
    shutil.copy(RULES / "canary.yml", tmp_path / "canary.yml")
    (tmp_path / "rules" / "canary_test.yml").write_text(wrong)
    done = _promtool("test", "rules", str(tmp_path / "rules" / "canary_test.yml"))
    assert done.returncode == 1 and "FAILED" in done.stdout + done.stderr


def test_slo_alerts_use_every_scenarios_slo() -> None:
    slos = {(s.slo.error_rate, s.slo.latency_p95) for s in map(load_scenario, SCENARIOS)}
    assert slos == {(0.01, 1.5)}, "a scenario has another SLO: give it its own rules"
    rules = _rules()
    for name, budget in (("ErrorBudget", "0.01"), ("LatencyBudget", "0.05")):
        for speed, factors in (("Fast", ("14.4", "6")), ("Slow", ("3", ""))):
            expr = str(rules[f"OmniSQL{name}Burn{speed}"]["expr"])
            assert all(f"{f} * {budget}" in expr for f in factors if f), expr
            assert f"> {budget}" in expr or speed == "Fast", expr
    slow = [str(r["expr"]) for n, r in rules.items() if n.startswith("omnisql:slo_slow")]
    assert len(slow) == 7 and all('le="1.5"' in e for e in slow)


def test_canary_alerts_use_the_guides_conditions() -> None:
    analysis = load_scenario(REPO / "scenarios" / "canary_bad_release.yaml").release.analysis
    rules = _rules()
    errors = str(rules["OmniSQLCanaryErrorRateAboveStable"]["expr"])
    latency = str(rules["OmniSQLCanaryLatencyP95"]["expr"])
    found = re.search(r"increase:rate1m > (\S+) ", errors)
    assert found and float(found.group(1)) == analysis.error_increase
    assert f">= {analysis.min_samples}" in errors and f">= {analysis.min_samples}" in latency
    assert f'{{track="canary"}} > {analysis.latency_p95:g}' in latency
    assert analysis.window == 60 and analysis.failing_windows == 2
    assert rules["OmniSQLCanaryErrorRateAboveStable"]["for"] == "1m"
