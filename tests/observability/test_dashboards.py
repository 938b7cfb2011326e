"""Dashboards as code: the committed JSON is the builder's output, every panel has one
Prometheus query that promtool parses, and the SOP panels are the runbook queries."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import yaml

from observability.dashboards import DASHBOARDS, OUT_DIR, build_all, main
from observability.queries import load_queries


def test_committed_json_equals_the_builders_output() -> None:
    built = build_all()
    assert sorted(p.name for p in OUT_DIR.glob("*.json")) == sorted(p.name for p in built)
    for path, text in built.items():
        assert path.read_text() == text, f"{path} is stale: python -m observability.dashboards"
    assert main(["--check"]) == 0


def test_every_panel_has_one_query_that_promtool_parses(tmp_path: Path) -> None:
    rules = []
    for path in OUT_DIR.glob("*.json"):
        board = json.loads(path.read_text())
        assert board["uid"] in DASHBOARDS and board["panels"]
        for panel in board["panels"]:
            (target,) = panel["targets"]
            assert target["datasource"]["uid"] == "${datasource}"
            rules.append({"record": f"panel:{len(rules)}", "expr": target["expr"]})
    assert len(rules) == sum(len(panels) for _, panels in DASHBOARDS.values()) == 27
    (tmp_path / "panels.yml").write_text(yaml.safe_dump({"groups": [{"name": "panels",
                                                                     "rules": rules}]}))
    exe = shutil.which("promtool")
    assert exe, "promtool is missing: scripts/test.sh installs Debian's prometheus package"
    done = subprocess.run([exe, "check", "rules", str(tmp_path / "panels.yml")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_sop_panels_are_the_runbook_queries() -> None:
    board = json.loads((OUT_DIR / "omnisql-sops.json").read_text())
    exprs = {p["targets"][0]["expr"] for p in board["panels"]}
    runbook = {q.promql("1m") for q in load_queries().values() if q.sop.startswith("SOP")}
    assert exprs == runbook
    noisy = next(p for p in board["panels"] if p["title"].startswith("SOP-101: Tenants"))
    assert noisy["type"] == "bargauge" and noisy["targets"][0]["instant"] is True
