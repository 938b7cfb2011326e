"""The system: OmniSQL's data plane built from a scenario and wired together.

Build phase: zones, cache, providers, engine, connectors, gateway, client, workload.
Wire phase: client → gateway → engine → (cache) → (control plane) → connectors → client.
Faults are then started as processes. The run loop itself lives in :mod:`sim.run`.

How the request path is wired: each component calls its next hop through a typed field
(``client.enter``, ``gateway.forward``, ``engine.lookup``, ``engine.fetch``,
``connectors.finish``, a station's ``serve`` and ``after``...), never through a method
that someone replaced at run time. The fields are set here, once; whatever stands in
front of a hop later (a read-through policy, a canary, a failover's DNS shift, a gray
failure) does so through the component's ``set_<hop>`` method, which returns the hop it
replaces so the newcomer can forward to it (and a fault can restore it).
"""

from __future__ import annotations

from typing import Any

from labcore.facts import FaultMark
from labcore.scenario import Scenario, SoftCache

from ..kernel import Environment, Recorder, Streams
from .autoscaling import Autoscaler
from .cache import ReadThrough, ResultCache, dense_keys
from .client import Client
from .connector import Connectors
from .control_plane import ControlPlane
from .engine import Engine
from .faults import start_faults
from .gateway import Gateway
from .gray import OutlierDetector
from .metadata import MetadataStore
from .mitigations import READ_THROUGH_KINDS, start_mitigations
from .provider import Provider
from .release import start_release
from .users import ClosedLoopUsers, NotifyingClient
from .workload import Workload
from .zone import Zone

__all__ = ["System", "FaultMark", "targets_of"]


def targets_of(scenario: Scenario) -> list[str]:
    """Every ``connector.object`` the providers offer, in a stable order."""
    return [f"{name}.{obj}" for name, p in scenario.topology.providers.items() for obj in p.objects]


class System:
    """All components of one run, built from the scenario."""

    def __init__(self, env: Environment, scenario: Scenario, streams: Streams,
                 recorder: Recorder) -> None:
        self.env, self.scenario, self.streams, self.recorder = env, scenario, streams, recorder
        topo = scenario.topology
        self.zone_names = list(topo.zones)
        self.tenant_names = list(scenario.workload.tenants)
        self.provider_names = list(topo.providers)
        self.targets = targets_of(scenario)
        self.marks: list[FaultMark] = []
        #: Scalar metrics of the run (``canary.*``, ``cutover.*``, ``failover.*``) and
        #: tables (the canary's analysis windows), written by releases and failovers.
        self.facts: dict[str, float | None] = {}
        self.logs: dict[str, Any] = {}
        self._open: dict[int, int] = {}

        self.zones = [Zone(i, name) for i, name in enumerate(self.zone_names)]
        keys_per_tenant = len(self.targets) * topo.cache.keys
        stale = [m.max_stale for m in scenario.mitigations if isinstance(m, SoftCache)]
        wl = scenario.workload
        dense = dense_keys(topo.cache, len(wl.tenants) * keys_per_tenant,
                           wl.scale * sum(tenant.rate for tenant in wl.tenants.values()))
        self.cache = ResultCache(env, topo.cache, len(self.zones), recorder, keys_per_tenant,
                                 max(stale, default=0.0), dense)
        self.providers = [
            Provider(name, spec, len(self.tenant_names), streams)
            for name, spec in topo.providers.items()
        ]
        self.metadata = MetadataStore(topo.metadata, self.zone_names, streams)
        closed = any(t.closed_loop is not None for t in scenario.workload.tenants.values())
        client_type = NotifyingClient if closed else Client  # issue 14: closed-loop users
        self.client = client_type(env, topo.gateway.retries, topo.gateway.timeout, streams,
                                  recorder)
        pinned = any(getattr(f, "zone", None) is not None for f in scenario.faults
                     if f.kind == "traffic_surge")  # zone-targeted surges pin requests
        self.gateway = Gateway(env, topo.gateway, self.zones, self.client, self.tenant_names,
                               streams, recorder, pinned)
        cache_latency = (
            topo.cache.latency.sampler(streams.numpy("cache.latency"))
            if topo.cache.enabled else None
        )
        self.engine = Engine(env, topo.engine, self.zones, self.cache, cache_latency,
                             self.client, streams, recorder)
        target_provider = [self.provider_names.index(t.split(".")[0]) for t in self.targets]
        self.connectors = Connectors(env, topo.connectors, self.zones, self.providers,
                                     target_provider, self.cache, self.client, recorder)
        self.control_plane = (  # issue 14: opt-in; it stands in front of the connectors
            ControlPlane(env, topo.control_plane, self.zones, self.connectors, streams)
            if topo.control_plane is not None else None)
        self._wire()
        self.read_through = self._read_through()
        self.workload = Workload(env, scenario, streams, self.targets, self.client.send)
        self.users = (ClosedLoopUsers(env, scenario, streams, self.workload, self.client,
                                      recorder)
                      if isinstance(self.client, NotifyingClient) else None)
        self.outlier = self._outlier_detection()
        self.autoscalers = self._autoscalers()
        start_faults(self)
        start_mitigations(self)
        self.release = start_release(self)

    def collect(self) -> None:
        """The run is over: components write their end-of-run facts."""
        if self.release is not None:
            self.release.collect()

    def _wire(self) -> None:
        self.client.set_enter(self.gateway.accept)
        self.client.set_release(self.gateway.release)
        self.gateway.set_forward(self.engine.submit)
        control_plane = self.control_plane
        self.engine.set_fetch(self.connectors.submit if control_plane is None
                              else control_plane.submit)
        self.recorder.add_tier("gateway", self.gateway.stations)
        self.recorder.add_tier("engine", self.engine.stations)
        self.recorder.add_tier("connector", self.connectors.stations)
        if self.control_plane is not None:  # absent otherwise: other results unchanged
            self.recorder.add_tier("control_plane", self.control_plane.stations)

    def _outlier_detection(self) -> OutlierDetector | None:
        """Issue 14: passive outlier ejection watches every attempt's outcome (opt-in)."""
        spec = self.scenario.topology.gateway.outlier_detection
        if spec is None:
            return None
        detector = OutlierDetector(self.env, spec, self.gateway, self.recorder)
        self.client.set_observer(detector.observe)
        return detector

    def _autoscalers(self) -> list[Autoscaler]:
        """Issue 14: target-tracking autoscaling of the engine and connector pools."""
        topo, out = self.scenario.topology, []
        for tier, spec, stations in (("engine", topo.engine.autoscaling, self.engine.stations),
                                     ("connector", topo.connectors.autoscaling,
                                      self.connectors.stations)):
            if spec is not None and stations:
                out.append(Autoscaler(self.env, spec, tier, stations, self.zones, self.streams))
        return out

    def _read_through(self) -> ReadThrough | None:
        """The cache's read-through policy, if a mitigation will switch it on."""
        if not any(m.kind in READ_THROUGH_KINDS for m in self.scenario.mitigations):
            return None
        topo = self.scenario.topology
        conn = topo.connectors
        lost_after = (conn.timeout * conn.retries.max_attempts
                      + conn.retries.max_wait * (conn.retries.max_attempts - 1)
                      + topo.gateway.timeout)
        policy = ReadThrough(self.env, self.cache, self.streams, self.recorder,
                             len(self.targets), topo.cache.keys, lost_after)
        policy.zones = lambda: self.gateway.routable
        policy.refresh_backoff = conn.retries.max_wait
        return policy

    def provider(self, name: str) -> Provider:
        return self.providers[self.provider_names.index(name)]

    def mark(self, fault: Any, detail: str) -> None:
        """A fault started now (it ends at :meth:`mark_end`, or with the run)."""
        self._open[id(fault)] = len(self.marks)
        self.marks.append(FaultMark(fault.kind, self.env.now, None, detail))

    def mark_end(self, fault: Any) -> None:
        index = self._open.pop(id(fault))
        mark = self.marks[index]
        self.marks[index] = FaultMark(mark.kind, mark.start, self.env.now, mark.detail)
