"""The benchmark command runs and reports its figures (the bars are read by people from
its output on a quiet machine: a timed assertion here would only flake)."""

import json
import re
import subprocess
import sys

from sim_helpers import ROOT

from sim import path_status


def test_bench_prints_rates_ratios_and_bars():
    proc = subprocess.run([sys.executable, "-m", "sim", "bench", "--duration", "20s",
                           "--repeat", "1", "--no-memory"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    path = "compiled" if path_status().compiled else "pure Python"
    assert re.search(rf"lab {path} \(full model\)\s*│\s*[\d,]+", out)
    assert ("compiled path: " in out) == path_status().compiled
    assert "plain SimPy, with client timeouts" in out
    assert re.search(r"ratio to plain SimPy, with client timeouts: [\d.]+x \(bar: 25x\)", out)
    assert re.search(r"ratio to plain SimPy, minimal \(no timeouts\): [\d.]+x \(bar: 10x\)", out)


def test_bench_json_has_every_figure(tmp_path):
    """``--quick --json``: the keys and their types on a tiny run (never a timing)."""
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "sim", "bench", "--quick", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(out.read_text())
    for key in ("lab_rps", "lab_pure_rps", "ratio_plain_simpy_timeouts", "ratio_minimal_simpy",
                "ratio_ciw"):
        assert isinstance(figures[key], float) and figures[key] > 0, key
    assert figures["compiled"] is path_status().compiled
    if figures["compiled"]:  # both paths measured, in a process each
        assert figures["ratio_compiled_to_pure"] > 0
    else:
        assert figures["lab_rps"] == figures["lab_pure_rps"]
    assert len(figures["scale"]) == 2
    for point in figures["scale"]:
        assert isinstance(point["peak_mb"], float) and point["peak_mb"] > 0
        assert isinstance(point["metrics_seconds"], float) and point["metrics_seconds"] >= 0
        assert isinstance(point["requests"], int) and point["requests"] > 0
        assert point["simulated_seconds"] == 20.0
    assert "Scale" in proc.stdout
    length = figures["memory_length"]  # the same traffic for 10 and 40 simulated seconds
    assert [p["simulated_seconds"] for p in length["points"]] == [10.0, 40.0]
    assert length["ratio"] == length["points"][1]["peak_mb"] / length["points"][0]["peak_mb"]
    assert "Memory in run length" in proc.stdout


def test_scale_run_reports_every_segment_to_the_end():
    """``scripts/scale_run.py``: a scale point run whole, segment by segment (a short,
    small one here; the figures themselves are read by people, never asserted)."""
    proc = subprocess.run([sys.executable, "scripts/scale_run.py", "400", "8", "50s",
                           "--segment", "20s"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"400 req/s, 8 tenants, 50s; compiled: {path_status().compiled}"
    times = [int(m.group(1)) for line in lines
             if (m := re.match(r"t=\s*(\d+) s  segment\s+[\d.]+ CPU-s  queued\s+\d+  "
                               r"peak\s+\d+ MB$", line))]
    assert times == [20, 40, 50]  # the last segment stops at the duration
    assert re.fullmatch(r"total [\d.]+ CPU-s for 50 simulated s \([\d.]+ CPU-min a "
                        r"simulated hour\), peak \d+ MB", lines[-1])
