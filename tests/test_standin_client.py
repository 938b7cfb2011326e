"""Issue 18: the runners configure the stand-in from their scenario through one client.

A fake admin API records what arrives: ``labcore.sandbox_client.apply_scenario``, the
Locust session's ``configure_target`` and the chaos control's ``configure_standin`` all
post the effective scenario (profile and ``--set`` applied) with the admin token.
"""

from __future__ import annotations

import http.server
import json
import threading
from argparse import Namespace
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labcore.sandbox_client import ApiError, SandboxClient, apply_scenario
from labcore.scenario_file import read_scenario

REPO = Path(__file__).resolve().parents[1]
FLOOD = REPO / "scenarios" / "rate_limit_flood.yaml"
ANSWER = {"scenario": {"label": "x"}, "not_honoured": ["topology.engine.service_time"],
          "reasons": {"topology.engine.service_time": "real CPU"}}


class FakeAdmin:
    def __init__(self) -> None:
        self.seen: list[tuple[str | None, dict[str, Any]]] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.seen.append((self.headers.get("Authorization"), body))
                bad = body["scenario"]["run"].get("seed") == 999  # the stand-in's refusal
                status, answer = (400, {"error": {"code": "BAD_SCENARIO",
                                                  "message": "run.seed: refused"}}) \
                    if bad else (200, ANSWER)
                self.send_response(status)
                self.end_headers()
                self.wfile.write(json.dumps(answer).encode())

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture()
def admin() -> Iterator[FakeAdmin]:
    fake = FakeAdmin()
    thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    thread.start()
    yield fake
    fake.server.shutdown()


def test_apply_scenario_posts_the_effective_mapping(admin: FakeAdmin) -> None:
    client = SandboxClient(admin.url, "s3cret", 5.0)
    answer = apply_scenario(client, FLOOD, "standin", ["run.duration=10m"])
    assert answer == ANSWER
    token, body = admin.seen[-1]
    assert token == "Bearer s3cret"
    assert body["name"] == "rate_limit_flood.yaml --profile standin --set run.duration=10m"
    expected = read_scenario(FLOOD, "standin", ["run.duration=10m"]).data
    assert body["scenario"] == json.loads(json.dumps(expected))
    assert body["scenario"]["topology"]["providers"]["crm"]["rate_limit"]["per_tenant"] == "8/s"
    with pytest.raises(ApiError, match="BAD_SCENARIO: run.seed: refused"):
        apply_scenario(client, FLOOD, None, ["run.seed=999"])


def _state_dir(tmp_path: Path, admin_url: str) -> Path:
    tenants = {t: {"api_key": f"k-{t}"} for t in ("acme", "globex", "initech", "umbrella")}
    (tmp_path / "state.json").write_text(json.dumps(
        {"gateway_url": "http://127.0.0.1:5", "admin_url": admin_url, "admin_token": "tok",
         "tenants": tenants, "zones": ["az-a", "az-b", "az-c"]}))
    return tmp_path


def test_the_locust_session_configures_the_stand_in(admin: FakeAdmin, tmp_path: Path) -> None:
    from loadtests.session import build_session
    options = Namespace(scenario=str(FLOOD), scenario_profile="standin", scenario_set=[],
                        per_user_rate=1.0, sandbox_dir=str(_state_dir(tmp_path, admin.url)),
                        allow_host=[], inject_faults=False, faults_external=False,
                        run_time=30)
    session = build_session(options, None)
    assert session.configure_target() == ANSWER
    assert admin.seen[-1][0] == "Bearer tok"
    assert admin.seen[-1][1]["name"] == "rate_limit_flood.yaml --profile standin"
    assert session.info["standin_not_honoured"] == ANSWER["not_honoured"]


def test_the_chaos_control_configures_only_the_sandbox(admin: FakeAdmin,
                                                      tmp_path: Path) -> None:
    pytest.importorskip("chaoslib")
    from chaosomnisql.standin import configure_standin
    config = {"omnisql_target": "sandbox", "omnisql_scenario": str(FLOOD),
              "omnisql_sandbox_dir": str(_state_dir(tmp_path, admin.url))}
    assert configure_standin(config) == ANSWER
    assert admin.seen[-1][1]["name"] == "rate_limit_flood.yaml --profile standin"
    calls = len(admin.seen)
    assert configure_standin({**config, "omnisql_target": "eks"}) is None
    assert len(admin.seen) == calls
