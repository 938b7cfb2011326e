"""One load test's state in one Locust process: scenario, plan, target, recorder, clock.

Built from Locust's parsed options (any namespace with the attributes below), without
importing Locust, so bad input is caught and tested here. The locustfile keeps one
:class:`LoadSession` on ``environment.omnisql``; every process (master, workers, or the
single local runner) builds its own from the same options.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from labcore.preflight import check_checks
from labcore.sandbox_client import SandboxClient, apply_scenario
from labcore.scenario import BlueGreen, Scenario, TrafficSurge
from labcore.scenario_file import ScenarioFile, read_scenario

from .faults import Action, FaultPlanError, fault_actions
from .queries import QueryMix
from .recorder import ClientRecorder
from .shapes import LoadPlan, build_plan, default_per_user_rate
from .targets import Target, resolve_target

__all__ = ["LoadSession", "OptionsError", "build_session"]


class OptionsError(ValueError):
    """A missing or contradictory command-line option."""


@dataclass
class LoadSession:
    """What a process needs to send, record and judge the scenario's load."""

    file: ScenarioFile
    plan: LoadPlan
    mix: QueryMix
    target: Target
    recorder: ClientRecorder
    actions: list[Action]
    inject_faults: bool
    faults_external: bool
    t0: float | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def scenario(self) -> Scenario:
        return self.file.scenario

    def start(self, wall_clock: float | None = None) -> None:
        """Set run time 0: now, or at ``wall_clock`` (``time.time()`` of the master's start,
        so that a worker's windows line up with the master's shape)."""
        self.t0 = time.monotonic()
        wall = time.time()
        if wall_clock is not None:
            late = max(0.0, wall - wall_clock)
            self.t0 -= late
            wall -= late
        # run time 0 as a Unix time: summary.json's ``started_at``, which lines other
        # clocks up with the windows (Locust's own stats history starts with its process)
        self.info["started_at"] = round(wall, 3)

    def now(self) -> float:
        """Run time in seconds (0 before :meth:`start`)."""
        return 0.0 if self.t0 is None else time.monotonic() - self.t0

    def configure_target(self) -> dict[str, Any] | None:
        """Issue 18: configure the stand-in from the scenario before the load starts (a
        target with the sandbox's admin API only; a staging host is configured by its own
        deployment). The answer's ``not_honoured`` is kept in ``info``. Raises
        ``labcore.sandbox_client.SandboxError`` when the stand-in refuses or is away."""
        if self.target.admin_url is None:
            return None
        client = SandboxClient(self.target.admin_url, self.target.admin_token, 60.0)
        answer: dict[str, Any] = apply_scenario(client, self.file)
        self.info["standin_not_honoured"] = answer.get("not_honoured", [])
        return answer

    @property
    def faults_applied(self) -> bool:
        """Whether the scenario's fault timeline really happened on the target: a traffic
        surge is sent by the load itself, other faults need injecting (or someone else);
        a blue-green release is replayed by ``--inject-faults`` only (it reads the facts)."""
        faults = self.scenario.faults
        surges_only = all(isinstance(f, TrafficSurge) for f in faults)
        if isinstance(self.scenario.release, BlueGreen) and self.inject_faults:
            return True
        return bool(faults) and (surges_only or self.inject_faults or self.faults_external)


def _fault_plan(scenario: Any, until: float, inject: bool) -> list[Action]:
    """The timeline's fault-API calls. Only a timeline this run injects must be expressible:
    without ``--inject-faults`` a scenario with, e.g., a ``region_loss`` (no fault-API call)
    is loaded like any other, and its faults are someone else's (or nobody's)."""
    try:
        return fault_actions(scenario, until)
    except FaultPlanError:
        if inject:
            raise
        return []


def build_session(options: Any, host: str | None) -> LoadSession:
    """Read the scenario and check everything before a single request is sent.

    Raises :class:`sim.ScenarioError`, :class:`OptionsError`, ``PlanError``,
    ``QueryError``, ``TargetError`` or ``FaultPlanError`` with a message for the user.
    """
    path = getattr(options, "scenario", None)
    if not path:
        raise OptionsError("--scenario is required, e.g. --scenario scenarios/baseline.yaml")
    if options.inject_faults and options.faults_external:
        raise OptionsError("--inject-faults and --faults-external exclude each other")
    file = read_scenario(path, options.scenario_profile or None, options.scenario_set or ())
    check_checks(file, "locust")  # an unknown metric or scope: refused before the load
    scenario = file.scenario
    run_time = getattr(options, "run_time", None)
    plan = build_plan(scenario, options.per_user_rate, float(run_time) if run_time else None)
    mix = QueryMix(scenario)
    actions = _fault_plan(scenario, plan.duration, bool(options.inject_faults))
    target = resolve_target(scenario.workload.tenants, host, options.sandbox_dir or None,
                            options.allow_host or ())
    if options.inject_faults and target.admin_url is None:
        raise OptionsError("--inject-faults needs the sandbox's admin API: target the "
                           "sandbox gateway from its state file (--sandbox-dir)")
    recorder = ClientRecorder(tuple(scenario.workload.tenants), scenario.run.window)
    info = {"source": str(file.path), "profile": file.profile, "overrides": list(file.overrides),
            "host": target.host, "users": plan.users,
            "per_user_rate": options.per_user_rate or default_per_user_rate(scenario),
            "faults_injected": bool(options.inject_faults), "faults_external":
            bool(options.faults_external)}
    return LoadSession(file, plan, mix, target, recorder, actions, bool(options.inject_faults),
                       bool(options.faults_external), info=info)
