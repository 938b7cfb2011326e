"""The sandbox's Prometheus, without starting it: config, program, the `--no-prometheus` flag."""

from __future__ import annotations

from pathlib import Path

import yaml

from sandbox import prometheus as prom
from sandbox.cli import build_parser

STATE = {"services": {"gateway": "http://127.0.0.1:20001", "admin": "http://127.0.0.1:20002",
                      "engine-az-a": "http://127.0.0.1:20003",
                      "mock-crm": "http://127.0.0.1:20004"}}


def test_config_scrapes_every_service_but_admin_and_loads_the_rules() -> None:
    config = yaml.safe_load(prom.render_config(STATE))
    (job,) = config["scrape_configs"]
    targets = {t["labels"]["service"]: t["targets"] for t in job["static_configs"]}
    assert targets == {"engine-az-a": ["127.0.0.1:20003"], "gateway": ["127.0.0.1:20001"],
                       "mock-crm": ["127.0.0.1:20004"]}
    assert [Path(p).name for p in config["rule_files"]] == ["canary.yml", "sli.yml", "slo.yml"]
    assert config["global"]["scrape_interval"] == config["global"]["evaluation_interval"]


def test_program_on_a_loopback_port(tmp_path: Path) -> None:
    state = dict(STATE)
    prom.add_to_state(state)
    url = str(state["prometheus_url"])
    assert url.startswith("http://127.0.0.1:")
    (program,) = prom.programs(tmp_path, state)
    assert program.group == "observability" and program.autorestart
    assert f"--web.listen-address={url.removeprefix('http://')}" in program.command
    assert prom.config_path(tmp_path).is_file() and prom.data_dir(tmp_path).is_dir()
    assert prom.programs(tmp_path, STATE) == []  # no prometheus_url: --no-prometheus
    assert prom.wait_ready(STATE) is True


def test_no_prometheus_flag() -> None:
    parser = build_parser()
    assert parser.parse_args(["up"]).prometheus is True
    assert parser.parse_args(["up", "--no-prometheus", "--detach"]).prometheus is False
