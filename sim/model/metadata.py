"""Metadata in PostgreSQL: a primary and an asynchronous streaming replica.

Queries do not wait on metadata (engines cache schemas), so losing the primary costs
data, not availability: writes acknowledged within the replication lag before the loss
are gone. The RPO of a loss is that lag, sampled at the moment of the loss; the replica
is promoted after ``failover_time``.
"""

from __future__ import annotations

import math

from labcore.scenario import Metadata as MetadataSpec

from ..kernel import Streams

__all__ = ["MetadataStore"]


class MetadataStore:
    def __init__(self, spec: MetadataSpec, zones: list[str], streams: Streams) -> None:
        self.primary = zones.index(spec.primary_zone) if spec.primary_zone else 0
        replica = spec.replica_zone or zones[(self.primary + 1) % len(zones)]
        self.replica: int | None = zones.index(replica) if len(zones) > 1 else None
        self.lag = spec.replication_lag.sampler(streams.numpy("metadata.replication_lag"))
        self.failover_time = spec.failover_time
        self.losses: list[tuple[float, float]] = []  # (time, data lost in seconds)

    def zone_lost(self, zone: int, now: float) -> float | None:
        """The zone holding the primary is gone: return the RPO of this loss."""
        if zone != self.primary:
            return None
        if self.replica is None:
            rpo = math.inf  # no copy anywhere: everything since the last backup is gone
        else:
            rpo = self.lag()
            self.primary, self.replica = self.replica, None
        self.losses.append((now, rpo))
        return rpo

    def record_loss(self, now: float, rpo: float) -> None:
        """A loss decided elsewhere (a whole region: see :mod:`sim.model.region`)."""
        self.losses.append((now, rpo))
