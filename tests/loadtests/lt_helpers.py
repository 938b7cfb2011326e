"""Scenario builders shared by the load-test unit tests (no Locust imported)."""

from __future__ import annotations

from pathlib import Path

from labcore.scenario import Scenario
from sim import load_scenario

REPO = Path(__file__).resolve().parents[2]
BASELINE = REPO / "scenarios" / "baseline.yaml"
AZ_LOSS = REPO / "scenarios" / "az_loss.yaml"

#: umbrella floods at 10x from 10 s to 30 s, ramping up over 4 s.
SURGE = ("faults=[{kind: traffic_surge, tenant: umbrella, at: 10s, duration: 20s, "
         "factor: 10, ramp: 4s}]")


def baseline(*overrides: str, profile: str | None = "standin") -> Scenario:
    return load_scenario(BASELINE, profile, ["run.duration=60s", "run.warmup=10s", *overrides])
