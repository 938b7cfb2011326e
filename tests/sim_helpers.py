"""Scenario builders shared by the simulator's tests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from labcore.scenario_file import read_scenario
from sim import Scenario

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"


def textbook(**changes: Any) -> dict[str, Any]:
    """One zone, one tenant, no cache, instant connectors, no retries: an M/M/c engine."""
    data: dict[str, Any] = {
        "name": "textbook",
        "run": {"duration": "2h", "warmup": "10m", "window": "1m"},
        "slo": {"latency_p95": "1h", "error_rate": "100%"},
        "topology": {
            "zones": ["az-a"],
            "gateway": {"timeout": "1h", "retries": {"max_attempts": 1}},
            "engine": {"workers_per_zone": 8,
                       "service_time": {"dist": "exponential", "mean": "1s"}},
            "cache": {"enabled": False},
            "connectors": {"enabled": False},
            "providers": {"crm": {"latency": "0", "objects": ["accounts"]}},
        },
        "workload": {"tenants": {"acme": {"rate": "6.4/s", "mix": {"crm.accounts": "100%"}}}},
    }
    for dotted, value in changes.items():
        node = data
        keys = dotted.split("__")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return data


def write(tmp_path: Path, data: dict[str, Any], name: str = "scenario.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def load(tmp_path: Path, data: dict[str, Any], *overrides: str) -> Scenario:
    return read_scenario(write(tmp_path, copy.deepcopy(data)), overrides=overrides).scenario
