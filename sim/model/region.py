"""Regional failover: the primary region is lost and a secondary one takes over.

The timeline after a ``region_loss`` fault, each step a draw from the scenario's
``failover:`` block:

1. every zone of the region fails at once (in-flight work is lost, or hangs with
   ``blackhole``); metadata written since the last copy reached the secondary is lost;
2. **detection**: an alarm fires after a delay;
3. **decision**: someone (or something) decides to fail over;
4. **spin-up**: infrastructure as code brings the data plane up in the secondary region;
5. **DNS shift**: clients move over evenly during one TTL (until their cached answer
   expires they still go to the dead region);
6. **warm-up**: the secondary's result cache starts cold, so the first minutes miss and
   fan out to the SaaS providers, which may answer with 429 floods.

RTO is then measured from the traffic itself (``rto_seconds``: the SLO holds again);
the timeline's parts are recorded as ``failover.*`` facts. Dependencies the secondary
needs (metadata, KMS keys, connector secrets) are replicated or not: without metadata
no query can be planned; without KMS keys or connector secrets no OAuth token can be
read, so every SaaS call answers 401.

RPO: with asynchronous streaming it is the replication lag at the loss; with a
snapshot or log shipping every ``interval`` it is the time since the last copy (a
uniform phase per replication); without replicated metadata it is unbounded.

The secondary region reuses the model's zones (same capacity): a recovered zone *is*
its counterpart in the secondary region.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

from labcore.scenario import DEPENDENCIES, Failover, RegionLoss

from .request import UNAVAILABLE, Attempt

if TYPE_CHECKING:
    import simpy

    from .system import System

__all__ = ["RegionalFailover", "region_loss"]


def region_loss(system: System, fault: RegionLoss) -> Iterator[simpy.Event]:
    """The fault process: the loss, then the failover timeline."""
    assert system.scenario.failover is not None  # the schema requires it
    yield from RegionalFailover(system, fault, system.scenario.failover).run()


class RegionalFailover:
    def __init__(self, system: System, fault: RegionLoss, spec: Failover) -> None:
        self.system, self.fault, self.spec, self.env = system, fault, spec, system.env
        streams = system.streams
        self.detection = spec.detection.sampler(streams.numpy("failover.detection"))
        self.decision = spec.decision.sampler(streams.numpy("failover.decision"))
        self.spinup = spec.spinup.sampler(streams.numpy("failover.spinup"))
        self.lag = spec.metadata.lag.sampler(streams.numpy("failover.metadata_lag"))
        # When the snapshot schedule started: a fixed phase per replication.
        self.phase = streams.get("failover.snapshot_phase").uniform(0.0, spec.metadata.interval)
        self.dns_rng = streams.get("failover.dns")
        self.missing = [d for d in DEPENDENCIES if d not in spec.replicated]

    def run(self) -> Iterator[simpy.Event]:
        system, facts = self.system, self.system.facts
        yield self.env.timeout(max(0.0, self.fault.at - self.env.now))
        lost_at = self.env.now
        self._lose_region()
        rpo = self.rpo(lost_at)
        system.metadata.record_loss(lost_at, rpo)
        detail = "lost the primary region" + (
            f", metadata RPO {rpo:.0f}s" if math.isfinite(rpo) else ", metadata lost")
        system.mark(self.fault, detail)
        if self.spec.metadata.mode != "async":
            # The scheme's worst case: a loss just before the next copy loses an interval.
            facts["failover.rpo_bound_seconds"] = self.spec.metadata.interval
        for step, sampler in (("detection", self.detection), ("decision", self.decision),
                              ("spinup", self.spinup)):
            delay = sampler()
            facts[f"failover.{step}_seconds"] = delay
            yield self.env.timeout(delay)
        facts["failover.switch_seconds"] = self.env.now - lost_at
        facts["failover.missing_dependencies"] = float(len(self.missing))
        self._bring_up_secondary()
        yield from self._shift_dns()
        facts["failover.shifted_seconds"] = self.env.now - lost_at
        system.mark_end(self.fault)

    def rpo(self, lost_at: float) -> float:
        """Metadata lost at ``lost_at``, in seconds of writes (``inf``: everything)."""
        meta = self.spec.metadata
        if "metadata" in self.missing:
            return math.inf
        if meta.mode == "async":
            return self.lag()
        return (lost_at - self.phase) % meta.interval

    def _lose_region(self) -> None:
        system = self.system
        for zone in system.zones:
            zone.fail(system.client.inflight(), system.client.finish, system.cache,
                      self.fault.blackhole)

    def _bring_up_secondary(self) -> None:
        system = self.system
        system.cache.flush()  # the secondary's cache starts cold
        for zone in system.zones:
            zone.recover(system.cache)
        if "kms_keys" in self.missing or "connector_secrets" in self.missing:
            tenants = list(range(len(system.tenant_names)))
            for provider in system.providers:
                provider.revoke(tenants)  # no readable OAuth token: every call is a 401
        if "metadata" in self.missing:
            for station in system.engine.stations:
                station.set_after(self._unplannable)

    def _unplannable(self, attempt: Attempt) -> None:
        """No metadata in the secondary: the engine cannot plan any query."""
        if attempt.alive:
            self.system.client.finish(attempt, UNAVAILABLE)

    def _shift_dns(self) -> Iterator[simpy.Event]:
        ttl = self.spec.dns_ttl
        if ttl <= 0:
            return
        client, start = self.system.client, self.env.now

        def resolve(attempt: Attempt) -> None:
            if self.dns_rng.random() * ttl < self.env.now - start:
                enter(attempt)
            elif not self.fault.blackhole:
                client.finish(attempt, UNAVAILABLE)  # the old region refuses fast

        enter = client.set_enter(resolve)  # the clients' old entry, until they resolve
        yield self.env.timeout(ttl)
        client.set_enter(enter)
