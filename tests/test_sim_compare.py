"""``sim compare``, ``report.html`` and ``sim new`` (issue 13, item 4)."""

from __future__ import annotations

import base64
import json
import re

import pandas as pd
import pytest
import yaml
from sim_helpers import SCENARIOS, textbook

from labcore.scenario_file import read_scenario
from sim.cli import main


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """The textbook M/M/c at 8 and at 7 workers, 3 replications each (seconds of work)."""
    root = tmp_path_factory.mktemp("compare")
    data = textbook(run={"duration": "40m", "warmup": "5m", "window": "1m"})
    data["checks"] = [{"name": "p95 within 10 s", "metric": "latency_p95", "op": "<=",
                       "value": "10s"}]
    path = root / "mmc.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    for name, workers in (("a", 8), ("b", 7)):
        code = main(["run", str(path), "-R", "3", "--jobs", "1", "--out", str(root / name),
                     "--set", f"topology.engine.workers_per_zone={workers}"])
        assert code in (0, 1)
    return root


def test_compare_shows_both_runs_the_difference_and_its_test(two_runs, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")  # an 80-column terminal: the table still fits
    out = two_runs / "cmp"
    assert main(["compare", str(two_runs / "a"), str(two_runs / "b"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads((out / "compare.json").read_text())
    rows = {r["metric"]: r for r in result["rows"]}
    wait = rows["latency_p95"]
    assert wait["test"] == "Welch t" and wait["difference"] > 0  # fewer workers: slower
    a = pd.read_csv(two_runs / "a" / "replications.csv")["latency_p95"]
    b = pd.read_csv(two_runs / "b" / "replications.csv")["latency_p95"]
    from scipy.stats import ttest_ind

    assert wait["p"] == pytest.approx(ttest_ind(a, b, equal_var=False).pvalue)
    assert wait["significant"] == (wait["p"] < 0.05)
    assert wait["a"] == json.loads((two_runs / "a" / "summary.json").read_text())[
        "metrics"]["latency_p95"]
    assert "Welch t" in printed and "latency_p95" in printed
    assert "…" not in printed and max(map(len, printed.splitlines())) <= 80

    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tables_written_to_a_file_are_not_broken_at_80_columns(monkeypatch):
    from sim.humanize import FILE_WIDTH, make_console

    monkeypatch.delenv("COLUMNS", raising=False)
    assert make_console().width == FILE_WIDTH == 120  # pytest's stdout is not a terminal
    monkeypatch.setenv("COLUMNS", "100")
    assert make_console().width == 100 and make_console(stderr=True).width == 100


def test_compare_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["compare", str(tmp_path), str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_report_html_is_self_contained(two_runs):
    page = (two_runs / "a" / "report.html").read_text()
    assert "1 of 1 check passed" in page and "<h2>Why</h2>" in page
    images = re.findall(r"src='data:image/png;base64,([^']+)'", page)
    assert len(images) == 1 and base64.b64decode(images[0])[:4] == b"\x89PNG"
    assert "src='http" not in page and "<script" not in page and "<link" not in page
    replications = pd.read_csv(two_runs / "a" / "replications.csv")
    assert len(replications) == 3 and list(replications["seed"]) == json.loads(
        (two_runs / "a" / "summary.json").read_text())["seeds"]
    assert page.count("<tr>") >= 3 + 1 + 1  # every replication, the header, a check
    assert "workers_per_zone: 8" in page  # the effective scenario


def test_new_scenario_from_baseline_validates_and_is_commented(tmp_path, capsys):
    assert main(["new", "my_scenario", "--from", "baseline", "--dir", str(tmp_path)]) == 0
    path = tmp_path / "my_scenario.yaml"
    text = path.read_text()
    assert text.startswith("# my_scenario: a scenario") and "docs/scenarios.md" in text
    assert read_scenario(path).scenario.name == "my_scenario"
    assert main(["validate", str(path)]) == 0
    assert main(["new", "my_scenario", "--dir", str(tmp_path)]) == 2  # never overwritten
    assert main(["new", "x", "--from", "no_such", "--dir", str(tmp_path)]) == 2
    assert "baseline" in capsys.readouterr().err


@pytest.mark.parametrize("source", sorted(p.stem for p in SCENARIOS.glob("*.yaml")))
def test_every_shipped_scenario_can_seed_a_new_one(tmp_path, source):
    assert main(["new", "copy", "--from", source, "--dir", str(tmp_path)]) == 0
