"""The whole scenario: run, SLO, topology, workload, faults, checks, releases, mitigations.

Cross-references between the parts (a fault's zone, a mix's connector, a mitigation's
tenant) are checked here, once every part is valid on its own.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from .base import Name, Strict
from .checks import CheckSpec
from .faults import Fault, check_fault, check_outlier_detection
from .mitigations import Mitigation, check_mitigation
from .releases import Failover, Release, ResiliencePolicy, check_release_and_failover
from .run import SLO, RunSpec
from .topology import Topology
from .workload import Workload

__all__ = ["Scenario"]


class Scenario(Strict):
    """A validated scenario: run settings, SLO, topology, workload, faults and checks."""

    name: Name
    description: str = ""
    run: RunSpec
    slo: SLO = SLO()
    topology: Topology
    workload: Workload
    faults: tuple[Fault, ...] = ()
    checks: tuple[CheckSpec, ...] = ()
    #: Named target profiles: dotted-path overrides applied by ``--profile NAME``.
    profiles: dict[Name, dict[str, Any]] = {}
    #: Releases and regional failover (:mod:`labcore.scenario.releases`).
    release: Release | None = None
    failover: Failover | None = None
    resilience: ResiliencePolicy = Field(default_factory=lambda: ResiliencePolicy())
    #: Runbook actions (:mod:`labcore.scenario.mitigations`).
    mitigations: tuple[Mitigation, ...] = ()

    @model_validator(mode="after")
    def _references(self) -> "Scenario":
        # Errors start with the field path so that the loader can point at its line.
        topo, tenants = self.topology, self.workload.tenants
        for name, tenant in tenants.items():
            for target in tenant.mix:
                connector, obj = target.split(".")
                provider = topo.providers.get(connector)
                where = f"workload.tenants.{name}.mix"
                if provider is None:
                    raise ValueError(f"{where}: unknown connector {connector!r} in {target!r}")
                if obj not in provider.objects:
                    raise ValueError(f"{where}: {connector} has no object {obj!r}")
        for i, cap in enumerate(topo.gateway.user_caps):
            if cap.tenant not in tenants:
                raise ValueError(f"topology.gateway.user_caps.{i}: unknown tenant {cap.tenant!r}")
        for i, fault in enumerate(self.faults):
            try:
                check_fault(fault, self)
            except ValueError as exc:
                raise ValueError(f"faults.{i}: {exc}") from None
        check_outlier_detection(self)
        return self

    @model_validator(mode="after")
    def _release_and_failover(self) -> "Scenario":
        check_release_and_failover(self)
        return self

    @model_validator(mode="after")
    def _mitigation_references(self) -> "Scenario":
        for i, mitigation in enumerate(self.mitigations):
            check_mitigation(mitigation, self, f"mitigations.{i}")
        return self

    def first_fault_at(self) -> float | None:
        return min((f.at for f in self.faults), default=None)
