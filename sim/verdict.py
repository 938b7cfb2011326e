"""The verdict as a person reads it: one overall line, checks in human units, 80 columns.

``summary.json`` keeps raw numbers; this module turns a summary into what the terminal
(and the HTML report) shows:

* :func:`overall_line`: ``3 of 4 checks passed`` (or ``all 2 checks passed``);
* :func:`verdict_table`: check, threshold, observed, 95% CI and P(pass) in human units
  (``4m20s``, ``259,200``, ``1.68 fetches/key``, ``0.42%``), a missing observation
  explained (``did not recover before the end of the run (20m)``), never ``None``;
* :func:`tenant_table`: the top tenants by 429s and connector time (SOP-101);
* :func:`failure_lines`: one line per failed check, for logs.

Every table fits 80 columns: long cells wrap, none is cut with an ellipsis.
"""

from __future__ import annotations

import re
from typing import Any

from .humanize import human, human_duration, human_interval

__all__ = ["describe_observed", "failure_lines", "missing_means", "overall_line", "p_pass_text",
           "tenant_table", "verdict_table"]

_RECOVERY = ("rto_seconds", "recovery_seconds")
#: Latencies over successful requests only (``latency_all_*`` counts every request).
_SUCCESS_LATENCY = re.compile(r"(^|\.)latency_(p\d+|mean)$")


def overall_line(summary: dict[str, Any]) -> str:
    """``3 of 4 checks passed`` / ``all 2 checks passed`` / ``no checks``."""
    checks = summary["checks"]
    passed = sum(1 for c in checks if c["passed"])
    if not checks:
        return "no checks: nothing to pass or fail"
    if passed == len(checks):
        return f"all {len(checks)} checks passed" if len(checks) > 1 else "1 of 1 check passed"
    return f"{passed} of {len(checks)} checks passed"


def describe_observed(check: dict[str, Any], summary: dict[str, Any]) -> str:
    """The observed value in human units, or why there is none: a replication that did
    not recover is told apart from a measured RTO (``4m20s (mean of 9); 1 of 10 did not
    recover before the end of the run (20m)``)."""
    metric, observed = check["metric"], check["observed"]
    if observed is not None:
        return human(observed, metric)
    why = missing_means(check, summary.get("duration_seconds"))
    runs = summary.get("replications", 1)
    missing, measured_mean = check.get("missing"), check.get("measured_mean")
    if runs > 1 and measured_mean is not None and missing:
        return (f"{human(measured_mean, metric)} (mean of {check['measured']}); "
                f"{missing} of {runs}: {why}")
    if runs > 1:
        return why + (f" (in {missing} of {runs} replications)" if missing
                      else " (in at least one replication)")
    return why


def missing_means(check: dict[str, Any], duration: float | None) -> str:
    """What a replication without a value of ``check``'s metric means (``did not recover
    before the end of the run (20m)``): written beside ``missing`` in summary.json."""
    return _missing(check["metric"], check["over"], human_duration(duration))


#: Whole-run facts whose null has a meaning of its own (see labcore's metric docs).
_NULL_MEANS = {
    "rpo_seconds": "metadata lost without bound",
    "cutover.drain_seconds": "blue did not drain within its drain_timeout",
    "canary.decision_seconds": "no canary decision before the end of the run ({end})",
}


def _missing(metric: str, over: str, end: str) -> str:
    if metric.endswith(_RECOVERY):
        return f"did not recover before the end of the run ({end})"
    if metric in _NULL_MEANS:
        return _NULL_MEANS[metric].format(end=end)
    if over in ("after_recovery", "outside_recovery"):
        return f"no windows after recovery: did not recover before the end ({end})"
    if metric.startswith(("failover.", "cutover.", "canary.", "mitigation.")):
        return f"did not happen before the end of the run ({end})"
    if _SUCCESS_LATENCY.search(metric):  # over successes: none may have succeeded
        return f"not measured: no successful request in the '{over}' windows"
    return f"not measured: no requests in the '{over}' windows"


def _scope(check: dict[str, Any]) -> str:
    words = check["over"].replace("_", " ")
    return "" if check["over"] == "run" or words in check["name"].lower() else f" ({words})"


def verdict_table(summary: dict[str, Any]) -> Any:
    """A rich table: check, threshold, observed (95% CI over replications), verdict."""
    from rich.table import Table

    table = Table(title=f"{summary['scenario']}: {summary['replications']} replication(s), "
                        f"seed {summary['seed']}; {overall_line(summary)}", expand=True)
    table.add_column("check", overflow="fold", ratio=2)
    table.add_column("threshold", justify="right", overflow="fold", ratio=1, min_width=9)
    table.add_column("observed", justify="right", overflow="fold", ratio=2)
    table.add_column("95% CI", justify="right", overflow="fold", ratio=1)
    table.add_column("P(pass)", justify="right", no_wrap=True, min_width=5)
    table.add_column("verdict", no_wrap=True, min_width=4)
    for check in summary["checks"]:
        metric = check["metric"]
        ci = human_interval(check["ci_low"], check["ci_high"], metric)
        verdict = "[green]pass[/green]" if check["passed"] else "[bold red]FAIL[/bold red]"
        table.add_row(check["name"] + _scope(check),
                      f"{check['op']} {human(check['threshold'], metric)}{_need(check)}",
                      describe_observed(check, summary), ci, p_pass_text(check), verdict)
    return table


def p_pass_text(check: dict[str, Any]) -> str:
    """P(pass) over the replications: ``90%`` (``—`` when a runner did not say)."""
    p_pass = check.get("p_pass")
    return "—" if p_pass is None else f"{100 * p_pass:.0f}%"


def _need(check: dict[str, Any]) -> str:
    """The verdict rule beside the threshold when it is not the mean's: `` in ≥90% of runs``."""
    rule = check.get("rule", "mean")
    if rule == "mean":
        return ""
    return f" in ≥{100 * float(rule.split('>=')[1]):.0f}% of runs"


def failure_lines(summary: dict[str, Any]) -> list[str]:
    """``FAILED name: metric <= 1s, observed 3.2s`` for every failed check."""
    lines = []
    for check in summary["checks"]:
        if check["passed"]:
            continue
        metric = check["metric"] if check["over"] == "run" else f"{check['metric']}@{check['over']}"
        lines.append(f"FAILED {check['name']}: {metric} {check['op']} "
                     f"{human(check['threshold'], check['metric'])}, observed "
                     f"{describe_observed(check, summary)}")
    return lines


def tenant_table(summary: dict[str, Any]) -> Any:
    """A rich table: the top tenants by 429s and connector time (SOP-101's dashboard)."""
    from rich.table import Table

    table = Table(title="top tenants by 429s and connector time")
    for column in ("tenant", "429s", "connector", "share", "requests", "errors", "P95"):
        table.add_column(column, justify="left" if column == "tenant" else "right",
                         overflow="fold")
    for row in summary["top_tenants"]:
        table.add_row(row["tenant"], human(row["rate_limited"], "rate_limited"),
                      human_duration(row["connector_seconds"]),
                      human(row["connector_share"], "connector_share"),
                      human(row["requests"], "requests"), human(row["error_rate"], "error_rate"),
                      human(row["latency_p95"], "latency_p95"))
    return table
