"""Bad input through the real `locust` command: a clear message and exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_locust
from lt_helpers import AZ_LOSS, BASELINE


@pytest.fixture()
def fake_sandbox(tmp_path: Path) -> str:
    tenants = {t: {"api_key": f"k-{t}"} for t in ("acme", "globex", "initech", "umbrella")}
    (tmp_path / "state.json").write_text(json.dumps(
        {"gateway_url": "http://127.0.0.1:9", "admin_url": "http://127.0.0.1:9",
         "tenants": tenants}))
    return str(tmp_path)


@pytest.mark.parametrize(("args", "message"), [
    ([], "--scenario is required"),
    (["--scenario", "scenarios/nope.yaml"], "no such scenario file"),
    (["--scenario", str(BASELINE), "--scenario-profile", "prod"], "unknown profile 'prod'"),
    (["--scenario", str(BASELINE), "--scenario-set",
      "faults=[{kind: latency_injection, target: engine, at: 1s, duration: 1s, factor: 2}]",
      "--inject-faults"], "no sandbox fault"),
    (["--scenario", str(AZ_LOSS), "--host", "http://192.0.2.7:8080"], "not on the allowlist"),
    (["--scenario", str(BASELINE), "--slis-from", "prometheus"], "--no-prometheus"),
])
def test_bad_input_exits_2_with_a_message(args: list[str], message: str, fake_sandbox: str) -> None:
    proc = run_locust(*args, "--sandbox-dir", fake_sandbox, timeout=60)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "k-acme" not in proc.stderr + proc.stdout  # keys are never printed
