"""Pre-flight: refuse a scenario's checks before anything runs.

A check naming a metric or a scope the registry (:mod:`labcore.registry`) does not know
is a typo that would otherwise surface only after a whole simulation, or never (a chaos
or Locust run would report it "not measured"). :func:`check_checks` raises a
:class:`~labcore.scenario_file.ScenarioError` naming the file, the check's line and the
nearest valid names; ``python -m sim validate``, ``python -m sim run``, the chaos wrapper
and the Locust runner call it before they start (exit 2).

With ``strict_runner`` it also refuses a check the chosen runner can never observe
(``python -m sim validate --runner chaos``). The runners themselves do not: a scenario is
shared by all three, so each reports the checks it cannot observe as not measured.
"""

from __future__ import annotations

from .registry import Runner, lookup, problem
from .scenario_file import ScenarioError, ScenarioFile

__all__ = ["check_checks", "check_problems"]


def check_problems(source: ScenarioFile, runner: Runner | None = None) -> list[ScenarioError]:
    """Every check of ``source`` that is wrong (or, with ``runner``, unobservable by it)."""
    tenants = tuple(source.scenario.workload.tenants)
    errors = []
    for index, check in enumerate(source.scenario.checks):
        message = problem(check.metric, check.over, runner, tenants)
        if message is not None:
            entry = lookup(check.metric)
            wrong_metric = entry is None or (runner is not None and runner not in entry.runners)
            field = "metric" if wrong_metric else "over"
            errors.append(source.error(("checks", index, field), message))
    return errors


def check_checks(source: ScenarioFile, runner: Runner | None = None,
                 strict_runner: bool = False) -> None:
    """Raise the first problem :func:`check_problems` finds (runner rules if strict)."""
    errors = check_problems(source, runner if strict_runner else None)
    if errors:
        raise errors[0]
