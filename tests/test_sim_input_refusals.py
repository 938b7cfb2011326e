"""Every bad input is refused with exit 2 before any simulation (issue 13, item 1).

Each probe of the issue has a test here: alias bombs, ``--out``, missing extras,
``--jobs``, memory, absurd durations, ``--set`` on a missing list item, YAML 1.2
booleans, and every error of a file listed at once.
"""

from __future__ import annotations

import re
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
import yaml
from sim_helpers import ROOT, SCENARIOS, textbook

import sim.run
import sim.sweep
from labcore.scenario_yaml import MAX_ALIASES, load_yaml
from sim import ScenarioError, read_scenario
from sim.cli import main
from sim.limits import EXTRAS, choose_jobs, estimate_memory

BASELINE = str(SCENARIOS / "baseline.yaml")

LAUGHS = "\n".join(
    ['lol0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    + [f"lol{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 10)]
)


class _Started(Exception):
    """Raised by a stand-in for the simulation: reaching it means no refusal happened."""


@pytest.fixture
def no_simulation(monkeypatch):
    """Make any replication fail the test loudly: refusals must come before it."""
    def refuse(*args, **kwargs):
        raise _Started("the simulation started")

    monkeypatch.setattr(sim.run, "run_replications", refuse)
    monkeypatch.setattr(sim.run, "simulate", refuse)


def _refused(capsys, argv: list[str]) -> str:
    """Run the CLI, assert exit 2 without a traceback, return what it printed."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    return err


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- YAML


def test_billion_laughs_is_refused_fast_with_bounded_memory(tmp_path, capsys):
    bomb = _write(tmp_path / "bomb.yaml", LAUGHS + "\n")
    assert main(["validate", BASELINE]) == 0  # imports done: time the refusal alone
    capsys.readouterr()
    tracemalloc.start()
    started = time.perf_counter()
    err = _refused(capsys, ["validate", str(bomb)])
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 0.5 and peak < 20 * 2**20, (elapsed, peak)
    assert "aliases" in err and "bomb.yaml:1" in err


def test_a_bomb_inside_a_valid_scenario_is_refused_before_the_run(tmp_path, capsys,
                                                                   no_simulation):
    text = yaml.safe_dump(textbook(), sort_keys=False) + LAUGHS.replace("lol", "x-lol") + "\n"
    err = _refused(capsys, ["run", str(_write(tmp_path / "s.yaml", text))])
    assert "billion laughs" in err


def test_too_many_aliases_name_the_line(tmp_path):
    text = "a: &a 1\nb: [" + ", ".join(["*a"] * (MAX_ALIASES + 1)) + "]\n"
    with pytest.raises(ScenarioError) as info:
        read_scenario(_write(tmp_path / "s.yaml", text))
    assert info.value.line == 2 and "aliases" in info.value.message


def test_recursive_alias_is_refused(tmp_path):
    with pytest.raises(ScenarioError) as info:
        read_scenario(_write(tmp_path / "s.yaml", "a: &a [1, *a]\n"))
    assert "refers to the node that contains it" in info.value.message


def test_deep_nesting_is_refused_without_recursion_error(tmp_path):
    with pytest.raises(ScenarioError) as info:
        read_scenario(_write(tmp_path / "s.yaml", "a: " + "[" * 5000 + "]" * 5000 + "\n"))
    assert "nested deeper" in info.value.message


def test_aliases_in_bounds_still_work_and_are_not_shared(tmp_path):
    data = textbook()
    text = yaml.safe_dump(data, sort_keys=False).replace(
        "  gateway:\n", "  gateway: &gw\n", 1)
    text += "profiles:\n  copy:\n    topology.engine.workers_per_zone: 9\n"
    source = read_scenario(_write(tmp_path / "s.yaml", text),
                           overrides=["topology.gateway.timeout=5s"])
    assert source.data["topology"]["gateway"]["timeout"] == "5s"
    node, loaded = load_yaml("a: &a {x: 1}\nb: *a\n", "t")
    loaded["b"]["x"] = 2
    assert loaded["a"]["x"] == 1  # a --set on b must not change a


def test_line_index_walks_an_aliased_node_once(tmp_path):
    text = "a: &a [" + ", ".join(["{k: 1}"] * 50) + "]\n" + "".join(
        f"b{i}: *a\n" for i in range(200))
    node, _ = load_yaml(text, "t")
    from labcore.scenario_file import _index_lines

    lines: dict = {}
    _index_lines(node, (), lines, "t", set())
    assert len(lines) < 400  # walking every alias would record 200 * 100 entries


def test_yaml_1_2_booleans_on_is_a_key(tmp_path):
    _, data = load_yaml("on: 1\nyes: no\nflag: true\noff: False\n", "t")
    assert data == {"on": 1, "yes": "no", "flag": True, "off": False}
    text = (SCENARIOS / "retry_storm.yaml").read_text().replace(
        "retries: {max_attempts: 4, backoff: none}",
        "retries: {max_attempts: 4, backoff: none, on: [timeout, unavailable]}")
    scenario = read_scenario(_write(tmp_path / "s.yaml", text)).scenario
    assert tuple(scenario.topology.gateway.retries.on) == ("timeout", "unavailable")


# --------------------------------------------------------------------------- files and options


def test_out_naming_an_existing_file_is_refused_before_the_run(tmp_path, capsys,
                                                               no_simulation):
    target = _write(tmp_path / "results", "")
    err = _refused(capsys, ["run", BASELINE, "--out", str(target)])
    assert "existing file" in err and str(target) in err


def test_out_that_cannot_be_written_is_refused_before_the_run(tmp_path, capsys,
                                                              no_simulation):
    target = _write(tmp_path / "a-file", "") / "run"
    err = _refused(capsys, ["run", BASELINE, "--out", str(target)])
    assert "cannot be written" in err


@pytest.mark.parametrize("module", ["ciw"])
def test_validate_model_without_ciw_names_the_pip_line(monkeypatch, capsys, module):
    monkeypatch.setitem(sys.modules, module, None)  # ``import ciw`` now raises ImportError
    err = _refused(capsys, ["validate-model", "--quick"])
    assert "pip install 'ciw>=3.2'" in err and "pip install -e '.[validation]'" in err


def test_sweep_to_parquet_without_pyarrow_names_the_pip_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setattr(sim.sweep, "execute", lambda *a, **k: pytest.fail("sweep ran"))
    err = _refused(capsys, ["sweep", BASELINE, "-f", "workload.scale=1", "-R", "1",
                            "--out", str(tmp_path / "r.parquet")])
    assert "pip install 'pyarrow>=15'" in err and "*.csv" in err


def test_extras_match_pyproject():
    text = (ROOT / "pyproject.toml").read_text()
    for extra, requirement in EXTRAS.values():
        block = re.search(rf"^{extra} = \[(.*?)\]$", text, re.M | re.S)
        assert block and f'"{requirement}"' in block.group(1), (extra, requirement)


def test_jobs_zero_is_refused(capsys, no_simulation):
    err = _refused(capsys, ["run", BASELINE, "--jobs", "0"])
    assert "--jobs" in err and "at least 1" in err


def test_jobs_above_the_cores_is_capped_with_a_warning(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    said: list[str] = []
    assert choose_jobs(64, 100, said.append) == 2
    assert "more than the 2 cores" in said[0]
    assert choose_jobs(None, 1, said.append) == 1 and choose_jobs(None, 10) == 2


def test_replications_beyond_memory_are_refused_with_the_estimate(capsys, no_simulation):
    err = _refused(capsys, ["run", BASELINE, "-R", "100000", "--jobs", "64"])
    assert re.search(r"need about [\d,.]+ GiB", err) and "--force" in err


def test_force_runs_past_the_memory_estimate(monkeypatch, no_simulation, tmp_path, capsys):
    monkeypatch.setattr("sim.limits.machine_memory", lambda: 1)
    assert main(["run", BASELINE, "-R", "2", "--out", str(tmp_path / "r")]) == 2
    code = main(["run", BASELINE, "-R", "2", "--force", "--out", str(tmp_path / "r")])
    assert code == 3 and "the simulation started" in capsys.readouterr().err


def test_memory_estimate_grows_with_replications_and_windows():
    scenario = read_scenario(BASELINE).scenario
    one, many = estimate_memory(scenario, 1, 1), estimate_memory(scenario, 1000, 1)
    assert 3 * 2**20 < (many - one) / 999 < 5 * 2**20  # baseline's arrays: ~3.9 MB a run


def test_absurd_duration_is_refused_with_the_bound(capsys, no_simulation):
    err = _refused(capsys, ["run", BASELINE, "--set", "run.duration=1e9h"])
    assert "run.duration" in err and "bound of 7d" in err
    assert re.search(r"baseline.yaml:\d+: run.duration", err)


def test_set_on_a_missing_list_item_says_the_same_with_or_without_faults(capsys):
    without = _refused(capsys, ["validate", BASELINE, "--set", "faults.5.at=3m"])
    with_ = _refused(capsys, ["validate", str(SCENARIOS / "az_loss.yaml"),
                              "--set", "faults.5.at=3m"])
    for err in (without, with_):
        assert "there is no item 5 in faults" in err and "cannot add one" in err
        assert err.count("error:") == 1


def test_every_error_of_a_file_is_listed(tmp_path, capsys):
    text = yaml.safe_dump(textbook(), sort_keys=False)
    text = text.replace("warmup: 10m", "wamup: 10m").replace(
        "workers_per_zone: 8", "workers_per_zone: 0")
    err = _refused(capsys, ["validate", str(_write(tmp_path / "s.yaml", text))])
    assert err.count("error:") == 2
    assert "run.wamup: unknown field" in err
    assert "topology.engine.workers_per_zone" in err
