"""docs/scenarios.md documents every section and metric, and cannot drift (item 6)."""

from __future__ import annotations

from labcore.registry import METRICS
from labcore.scenario import Scenario
from sim.cli import main
from sim.docs import BEGIN, DOC, END, update_doc


def test_committed_doc_is_what_the_code_generates():
    assert update_doc(check=True), "docs/scenarios.md is stale: run python -m sim docs"
    assert main(["docs", "--check"]) == 0


def test_every_section_and_metric_is_documented():
    text = DOC.read_text()
    generated = text.split(BEGIN)[1].split(END)[0]
    for section in Scenario.model_fields:
        if section not in ("name", "description", "profiles"):
            assert f"#### `{section}" in generated, section
    for kind in ("user_cap", "cache_scale", "canary", "blue_green", "az_loss",
                 "traffic_surge"):
        assert f"kind: {kind}`" in generated, kind
    for metric in METRICS:
        assert f"| `{metric.name}` |" in generated, metric.name


def test_a_stale_doc_is_detected(tmp_path):
    stale = tmp_path / "scenarios.md"
    stale.write_text(DOC.read_text().replace("| `rto_seconds` |", "| `rto_secs` |"))
    assert not update_doc(stale, check=True)
    assert update_doc(stale) and update_doc(stale, check=True)
    assert stale.read_text() == DOC.read_text()
