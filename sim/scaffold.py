"""``python -m sim new NAME --from baseline``: a new scenario file to start from.

The new file is a copy of a shipped scenario (``--from``: a name under ``scenarios/`` or
a path) with its ``name:`` set to ``NAME`` and a comment block on top that says what each
section is for and where it is documented. It is validated before it is kept: the
scaffold always runs as written. An existing file is never overwritten.
"""

from __future__ import annotations

import re
from pathlib import Path

from labcore.scenario_file import ScenarioError, read_scenario

__all__ = ["HEADER", "new_scenario", "shipped_scenario"]

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"

HEADER = """\
# {name}: a scenario of the OmniSQL Reliability Lab, started from {source}.
#
# Sections (every field, unit and metric: docs/scenarios.md):
#   run:          how long to simulate (duration, warmup excluded from metrics, window)
#                 and how many replications; seed fixes the random streams.
#   slo:          the latency P95 and error-rate objective every window is judged on.
#   topology:     zones, gateway (timeout, retries), engine workers, cache, connectors,
#                 providers and their rate limits.
#   workload:     tenants: their rate (e.g. 120/s), users and query mix.
#   faults:       what goes wrong and when (az_loss, traffic_surge, latency_injection...).
#   mitigations:  what the operator does about it (user_cap, cache scale-out...).
#   release / failover: a canary or blue-green release; a regional failover plan.
#   checks:       the verdict: {{metric, op, value, over}}; exit 1 if one fails.
#   profiles:     named sets of overrides, e.g. --profile standin.
#
# Try it:   python -m sim validate {path}
#           python -m sim run {path} --set run.duration=5m
"""


def shipped_scenario(name: str) -> Path:
    """``baseline`` → ``scenarios/baseline.yaml``; a path is taken as it is."""
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
        return candidate
    shipped = SCENARIOS / f"{name}.yaml"
    if shipped.is_file():
        return shipped
    known = ", ".join(sorted(p.stem for p in SCENARIOS.glob("*.yaml")))
    raise ScenarioError(name, f"--from: no such scenario; shipped ones: {known}")


def new_scenario(name: str, source: str, directory: Path) -> Path:
    """Write ``directory/NAME.yaml`` from ``source`` and validate it (see module doc)."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ScenarioError(name, "NAME may hold letters, digits, '_', '-' and '.' only")
    origin = shipped_scenario(source)
    path = directory / f"{name}.yaml"
    if path.exists():
        raise ScenarioError(str(path), "already exists; choose another NAME or --dir")
    text = origin.read_text(encoding="utf-8")
    body, count = re.subn(r"(?m)^name:.*$", f"name: {name}", text, count=1)
    if not count:
        body = f"name: {name}\n{text}"
    directory.mkdir(parents=True, exist_ok=True)
    header = HEADER.format(name=name, source=origin.name, path=path)
    path.write_text(header + "\n" + body, encoding="utf-8")
    try:
        read_scenario(path)
    except ScenarioError:
        path.unlink()
        raise
    return path
