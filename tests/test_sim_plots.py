"""The overview plot (issue 13, item 7): warm-up in the legend, errors in %, simultaneous
faults labelled once."""

from __future__ import annotations

import matplotlib.pyplot as plt
from sim_helpers import load, textbook

from sim import simulate
from sim.report import overview_figure


def test_overview_legend_units_and_fault_labels(tmp_path):
    data = textbook(run={"duration": "20m", "warmup": "2m", "window": "1m"})
    data["workload"]["tenants"]["acme"]["rate"] = "3/s"
    data["faults"] = [
        {"kind": "traffic_surge", "tenant": "acme", "at": "5m", "duration": "3m", "factor": 1.5},
        {"kind": "traffic_surge", "tenant": "acme", "at": "5m", "duration": "3m", "factor": 1.2},
        {"kind": "traffic_surge", "tenant": "acme", "at": "12m", "duration": "2m", "factor": 1.1},
    ]
    result = simulate(load(tmp_path, data), seed=3)
    fig = overview_figure(result)
    try:
        lat, err = fig.axes[0], fig.axes[1]
        labels = [t.get_text() for t in lat.get_legend().get_texts()]
        assert "warm-up (not measured)" in labels and labels.count("fault") == 1
        assert err.get_ylabel() == "error rate (%)"
        slo = [line for line in err.get_lines() if line.get_label() == "error SLO"][0]
        assert slo.get_ydata()[0] == 100.0 * result.scenario.slo.error_rate
        notes = [t.get_text() for t in lat.texts]
        assert len(notes) == 2  # two distinct fault times: one label each
        assert notes[0].count("acme") == 2 and " + " in notes[0]
    finally:
        plt.close(fig)
