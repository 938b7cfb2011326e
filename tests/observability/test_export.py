"""`python -m sim export`: the exported canary analysis has the scenario's thresholds,
validates against the Argo Rollouts and Flagger schemas, and its queries judge series the
way the simulator's analysis does (evaluated by promtool)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from labcore.scenario_file import load_scenario
from sim.export import argo_analysis_template, canary_queries, flagger_resources

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "observability" / "schemas"
BAD = REPO / "scenarios" / "canary_bad_release.yaml"
ARGO_MODELS = "@kubernetes-models/argo-rollouts@2.0.0"


def _export(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "sim", "export", *args], capture_output=True,
                          text=True, timeout=120, cwd=REPO, env=env, check=False)


@pytest.fixture(scope="session")
def argo_models() -> Path:
    """The Argo Rollouts models from npm, installed once into a cache directory."""
    cache = Path(os.environ.get("OMNISQL_NPM_CACHE",
                                Path.home() / ".cache" / "omnisql-lab" / "npm-schemas"))
    if not (cache / "node_modules" / "@kubernetes-models" / "argo-rollouts").is_dir():
        assert shutil.which("npm"), "npm is needed to fetch the Argo Rollouts schema"
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--prefix", str(cache), "--no-audit", "--no-fund",
                        "--silent", ARGO_MODELS], check=True, timeout=300)
    shutil.copy(SCHEMAS / "validate_argo.mjs", cache / "validate_argo.mjs")
    return cache


def _argo_validate(cache: Path, docs: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["node", "validate_argo.mjs"], input=json.dumps(docs), text=True,
                          capture_output=True, cwd=cache, timeout=60, check=False)


def test_argo_thresholds_equal_the_scenarios() -> None:
    analysis = load_scenario(BAD).release.analysis  # type: ignore[union-attr]
    out = _export("argo-rollouts", str(BAD))
    assert out.returncode == 0, out.stderr
    (template,) = yaml.safe_load_all(out.stdout)
    metrics = {m["name"]: m for m in template["spec"]["metrics"]}
    assert set(metrics) == {"error-rate-increase", "latency-p95"}
    for metric in metrics.values():
        assert metric["interval"] == "1m" and analysis.window == 60
        assert metric["count"] == analysis.windows_per_step == 3
        assert metric["failureLimit"] == analysis.failing_windows - 1 == 1
        assert f">= {analysis.min_samples})" in metric["provider"]["prometheus"]["query"]
    errors, latency = metrics["error-rate-increase"], metrics["latency-p95"]
    assert errors["failureCondition"] == "!isNaN(result[0]) && result[0] > 0.005"
    assert analysis.error_increase == 0.005 and analysis.latency_p95 == 1.5
    assert latency["failureCondition"] == "!isNaN(result[0]) && result[0] > 1.5"
    assert "omnisql:canary_requests:increase1m" in errors["provider"]["prometheus"]["query"]
    simulate = template["metadata"]["annotations"]["omnisql.lab/simulate"]
    assert simulate.endswith("canary_bad_release.yaml --set release.analysis.counting=argo")


def test_standin_profile_exports_its_own_window() -> None:
    scenario = load_scenario(BAD, "standin")
    (metric, _) = argo_analysis_template(scenario)["spec"]["metrics"]
    assert metric["interval"] == "3m" and metric["count"] == 1 and metric["failureLimit"] == 0
    assert "[3m]" in metric["provider"]["prometheus"]["query"]


def test_flagger_thresholds_equal_the_scenarios() -> None:
    scenario = load_scenario(BAD)
    *templates, canary = flagger_resources(scenario)
    analysis = canary["spec"]["analysis"]
    assert analysis["interval"] == "1m" and analysis["threshold"] == 2
    assert analysis["stepWeights"] == [5, 25, 50]
    ranges = {m["name"]: m["thresholdRange"] for m in analysis["metrics"]}
    assert ranges == {"error-rate-increase": {"max": 0.005}, "latency-p95": {"max": 1.5}}
    assert {t["metadata"]["name"] for t in templates} == {
        m["templateRef"]["name"] for m in analysis["metrics"]}
    assert all("vector(NaN)" not in t["spec"]["query"] for t in templates)


def test_argo_export_validates_against_the_argo_rollouts_schema(argo_models: Path) -> None:
    docs = [argo_analysis_template(load_scenario(BAD, p)) for p in (None, "standin")]
    done = _argo_validate(argo_models, docs)
    assert done.returncode == 0 and done.stdout.split() == ["valid", "valid"], done.stdout
    broken = json.loads(json.dumps(docs[0]))
    broken["spec"]["metrics"][0]["interval"] = 60  # the schema wants a duration string
    del broken["spec"]["metrics"][1]["name"]
    done = _argo_validate(argo_models, [broken])
    assert done.returncode == 1 and "interval must be string" in done.stdout, done.stdout


def test_flagger_export_validates_against_the_flagger_schema() -> None:
    schema = json.loads((SCHEMAS / "flagger-v1beta1.schema.json").read_text())
    out = _export("flagger", str(BAD), "--profile", "standin")
    assert out.returncode == 0, out.stderr
    docs = list(yaml.safe_load_all(out.stdout))
    assert [d["kind"] for d in docs] == ["MetricTemplate", "MetricTemplate", "Canary"]
    for doc in docs:
        jsonschema.validate(doc, schema)
    docs[2]["spec"]["analysis"]["metrics"][0]["tresholdRange"] = {"max": 1}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(docs[2], schema)


def test_export_without_a_canary_is_bad_input(tmp_path: Path) -> None:
    out = _export("argo-rollouts", str(REPO / "scenarios" / "baseline.yaml"))
    assert out.returncode == 2 and "baseline.yaml" in out.stderr and "release" in out.stderr
    assert "Traceback" not in out.stderr
    missing = _export("flagger", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr


def test_export_out_file(tmp_path: Path) -> None:
    out = _export("argo-rollouts", str(BAD), "--out", str(tmp_path / "at.yaml"),
                  "--prometheus", "http://127.0.0.1:9090")
    assert out.returncode == 0, out.stderr
    (doc,) = yaml.safe_load_all((tmp_path / "at.yaml").read_text())
    assert doc["spec"]["args"] == [{"name": "prometheus-address",
                                    "value": "http://127.0.0.1:9090"}]


# -- the exported queries on series: what Argo would read at each window -----------------

_STABLE = ('omnisql_requests_total{{scope="az-a.engine",status="{}",tenant="acme",'
           'connector="crm"}}')
_CANARY = ('omnisql_requests_total{{scope="az-c.canary",status="{}",tenant="acme",'
           'connector="crm"}}')


def _series(canary_ok: int, canary_failed: int) -> list[dict[str, str]]:
    """Per minute: stable 995 ok + 5 failed (0.5%), the canary as given."""
    return [{"series": _STABLE.format(200), "values": "0+995x20"},
            {"series": _STABLE.format(500), "values": "0+5x20"},
            {"series": _CANARY.format(200), "values": f"0+{canary_ok}x20"},
            {"series": _CANARY.format(500), "values": f"0+{canary_failed}x20"}]


def _promtool_eval(tmp_path: Path, query: str, series: list[dict[str, str]],
                   expected: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    test = {"rule_files": [str(REPO / "observability" / "rules" / "canary.yml")],
            "evaluation_interval": "1m",
            "tests": [{"interval": "1m", "input_series": series,
                       "promql_expr_test": [{"expr": query, "eval_time": "10m",
                                             "exp_samples": expected}]}]}
    path = tmp_path / "export_test.yml"
    path.write_text(yaml.safe_dump(test))
    exe = shutil.which("promtool")
    assert exe, "promtool is missing: scripts/test.sh installs Debian's prometheus package"
    return subprocess.run([exe, "test", "rules", str(path)], capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.mark.parametrize("profile", [None, "standin"])
@pytest.mark.parametrize("canary, verdict", [((196, 4), "fail"), ((199, 1), "pass"),
                                             ((48, 2), "inconclusive")])
def test_exported_error_query_judges_like_the_simulator(
        tmp_path: Path, profile: str | None, canary: tuple[int, int], verdict: str) -> None:
    # canary 2% (+1.5 points): fail; 0.5% (+0.0): pass; 2% of 50 requests a minute: fewer
    # than min_samples (100) in a 1-min window -> inconclusive. The standin profile's 3-min
    # window holds 150 such requests: there it is a failure.
    analysis = load_scenario(BAD, profile).release.analysis  # type: ignore[union-attr]
    query = canary_queries(analysis).argo("error_increase")
    if profile == "standin" and verdict == "inconclusive":
        verdict = "fail"
    probe = {"fail": f"({query}) > bool {analysis.error_increase}",
             "pass": f"({query}) <= bool {analysis.error_increase}",
             "inconclusive": f"({query}) != bool ({query})"}[verdict]  # NaN != NaN
    done = _promtool_eval(tmp_path, probe, _series(*canary), [{"labels": "{}", "value": 1}])
    assert done.returncode == 0, done.stdout + done.stderr
