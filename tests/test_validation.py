"""The model-validation cases (sim/validation.py): theory, Ciw and the lab agree, and the
agreement rule is able to say no.

The statistical tests use the command's own rule (one-sample t against theory, Welch
against Ciw, Bonferroni) on shorter runs (``QUICK``) with fewer replications: wider
intervals, same soundness. The suite's family-wise level is 1% over all cases, so a
different set of seeds would pass too with probability at least 99% if the lab is right;
``test_rule_detects_a_model_five_percent_off`` shows the same rule at the same level
rejects a small, real error.
"""

from __future__ import annotations

import math

import pytest

from sim.cli import main
from sim.validation import (
    CASES,
    CIW_README_WAIT,
    QUICK,
    Case,
    Row,
    agreement,
    ciw_readme_check,
    ciw_task,
    detection_time,
    erlang_c,
    lab_task,
    md1,
    mmc,
    mmck,
    theory,
    validate,
)

#: Family-wise level of the whole suite, split evenly over the parametrised cases.
SUITE_ALPHA = 0.01
CASE_ALPHA = SUITE_ALPHA / len(CASES)
LAB_R, CIW_R = 10, 6


# --------------------------------------------------------------------------- theory


def test_erlang_c_reference_example():
    result = mmc(8, 6.4, 1.0)
    assert result.p_wait == pytest.approx(0.457645, abs=1e-6)
    assert result.wq == pytest.approx(0.286028, abs=1e-6)
    assert erlang_c(1, 0.5, 1.0) == pytest.approx(0.5)  # M/M/1: P(wait) = rho


def test_erlang_c_refuses_an_unstable_queue():
    with pytest.raises(ValueError, match="unstable"):
        erlang_c(2, 2.0, 1.0)


def test_mmck_limits():
    # K = c is Erlang's loss system: M/M/1/1 blocks a / (1 + a).
    assert mmck(1, 1, 0.5, 1.0).p_block == pytest.approx(0.5 / 1.5)
    # A huge buffer is M/M/c.
    big, inf = mmck(4, 400, 3.0, 1.0), mmc(4, 3.0, 1.0)
    assert big.p_block < 1e-12
    assert big.wq == pytest.approx(inf.wq, rel=1e-9)
    assert big.p_wait == pytest.approx(inf.p_wait, rel=1e-9)


def test_md1_is_half_of_mm1_wait():
    # Pollaczek–Khinchine: deterministic service halves the M/M/1 wait.
    assert md1(0.8, 1.0).wq == pytest.approx(mmc(1, 0.8, 1.0).wq / 2.0)


def test_theory_is_read_from_the_scenario():
    (tandem,) = [c for c in CASES if c.kind == "tandem"]
    expected = theory("tandem", tandem.scenario())
    stations = [mmc(2, 4.0, 1 / 0.3), mmc(4, 4.0, 1 / 0.8), mmc(8, 4.0, 1 / 1.5)]
    assert expected["mean latency (s)"] == pytest.approx(
        sum(s.wq for s in stations) + 0.3 + 0.8 + 1.5)


def test_detection_time_is_the_third_failed_health_check():
    (az,) = [c for c in CASES if c.kind == "az_loss"]
    scenario = az.scenario()
    assert detection_time(scenario, scenario.faults[0]) == 615.0
    coinciding = az.scenario(("faults.0.at=600s",))
    with pytest.raises(ValueError, match="ambiguous"):
        detection_time(coinciding, coinciding.faults[0])


# --------------------------------------------------------------------------- Ciw


def test_ciw_is_driven_right_readme_example():
    assert ciw_readme_check() == CIW_README_WAIT == 4.230543089827278


def test_ciw_replications_do_not_share_random_numbers():
    case = CASES[0]
    a = ciw_task(case, QUICK, 1)
    assert a == ciw_task(case, QUICK, 1)
    assert a != ciw_task(case, QUICK, 2)


# --------------------------------------------------------------------------- agreement


#: The load-balancing cases run Ciw on a 4-node network (about 20 s of CPU each): slow tier.
_CASE_PARAMS = [pytest.param(c, id=c.name, marks=[pytest.mark.slow] if c.kind == "balancing"
                             else []) for c in CASES]


@pytest.mark.parametrize("case", _CASE_PARAMS)
def test_case_agrees_with_theory_and_ciw(case):
    rows = validate([case], LAB_R, CIW_R, extra=QUICK, seed=7)
    rows = agreement(rows, CASE_ALPHA)
    assert rows and all(r.tests >= 1 for r in rows)
    failed = [f"{r.quantity}: lab {r.lab_estimate!r}, theory {r.theory}, ciw "
              f"{r.ciw_estimate!r}, p {r.p_theory}/{r.p_ciw}" for r in rows if not r.agree]
    assert not failed, failed


def test_rule_detects_a_model_five_percent_off():
    """Power: a lab whose service is 5% slower than the scenario says must fail the rule
    at the suite's level, against theory and against Ciw. (At these quick sizes a 3%
    error gives p ~ 5e-4: below 5% the rule cannot promise to see it.)"""
    case = CASES[2]  # M/M/8, rho 0.8
    slower = "topology.engine.service_time={dist: exponential, mean: 1.05s}"
    wrong = Case(case.name, case.file, (*case.overrides, slower))
    seeds = range(100, 100 + LAB_R)
    lab = [lab_task(wrong, QUICK, s) for s in seeds]
    ciw = [ciw_task(case, QUICK, 1000 + r) for r in range(CIW_R)]
    expected = theory("station", case.scenario(QUICK))
    rows = agreement([Row(case.name, q, expected[q], tuple(c[q] for c in ciw),
                          tuple(x[q] for x in lab)) for q in lab[0]], CASE_ALPHA)
    verdict = {r.quantity: r for r in rows}
    utilisation = verdict["utilisation"]
    assert not utilisation.agree
    assert utilisation.p_theory < utilisation.alpha and utilisation.p_ciw < utilisation.alpha
    assert not verdict["Wq (s)"].agree  # 0.33 s instead of 0.29 s


def test_agreement_needs_every_test_and_counts_them():
    rows = agreement([
        Row("a", "x", 1.0, (1.0, 1.1, 0.9), (1.0, 1.02, 0.98)),
        Row("a", "y", None, (5.0, 5.1, 4.9), (1.0, 1.02, 0.98)),  # lab far from Ciw
        Row("a", "z", None, (), (1.0, 1.02, 0.98)),  # nothing to compare with
    ])
    assert [r.agree for r in rows] == [True, False, False]
    assert rows[0].alpha == pytest.approx(0.05 / 3)


# --------------------------------------------------------------------------- command


def test_validate_model_command(capsys):
    code = main(["validate-model", "--quick", "--case", "M/M/1,", "-R", "4",
                 "--ciw-replications", "3", "--jobs", "1"])
    out = capsys.readouterr().out
    assert "P(wait)" in out and "Ciw driver check" in out and "ok" in out
    assert "3/3 quantities agree" in out
    assert code == 0


def test_validate_model_refuses_an_unknown_case(capsys):
    assert main(["validate-model", "--case", "no such case"]) == 2


def test_bench_peers_serve_the_same_network():
    """The bench's plain-SimPy and Ciw M/M/c serve what the lab serves: about λ·T
    customers (a Poisson count: within 5 standard deviations)."""
    from sim.bench import ciw_mmc, plain_simpy_mmc
    from sim.run import simulate

    scenario = CASES[2].scenario(QUICK)
    expected = scenario.workload.total_rate() * scenario.run.duration
    for served in (plain_simpy_mmc(scenario), ciw_mmc(scenario), simulate(scenario).requests):
        assert abs(served - expected) < 5 * math.sqrt(expected)


def test_validate_model_fails_when_a_row_disagrees(monkeypatch, capsys):
    from sim.validation import command

    far = Row("M/M/1, rho 0.5", "Wq (s)", 1.0, (1.0, 1.1, 0.9), (2.0, 2.1, 1.9))
    monkeypatch.setattr(command, "validate", lambda *args, **kwargs: agreement([far]))
    assert main(["validate-model", "--case", "M/M/1,", "--jobs", "1"]) == 1
    assert "0/1 quantities agree" in capsys.readouterr().out
