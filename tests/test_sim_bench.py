"""The benchmark command runs and reports its figures (the bars are read by people from
its output on a quiet machine: a timed assertion here would only flake)."""

import re
import subprocess
import sys

from sim_helpers import ROOT


def test_bench_prints_rates_ratios_and_bars():
    proc = subprocess.run([sys.executable, "-m", "sim", "bench", "--duration", "20s",
                           "--repeat", "1", "--no-memory"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert re.search(r"lab \(light events, full model\)\s*│\s*[\d,]+", out)
    assert "plain SimPy, with client timeouts" in out
    assert re.search(r"speed: [\d,]+ req/s", out)
    assert re.search(r"ratio to plain SimPy with client timeouts: [\d.]+x", out)
