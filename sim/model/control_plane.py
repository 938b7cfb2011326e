"""The control plane: policy evaluation and token lookups on the connector path.

Opt-in (``topology.control_plane``). Every fetch that reaches the connectors (a cache
miss, or a read-through refresh) first holds one control-plane worker of its zone for
``policy_time`` + ``token_lookup_time``: the OPA-style per-user policy check, then the
tenant's SaaS token from the secret store. So a cache stampede (SOP-102) or a wave of
re-fetches after a token failure (SOP-103) loads this tier as it does in production.

The tier stands in front of :meth:`Connectors.submit`: the system wires the engine's
misses to it, and a read-through policy installed later sends its fetches where the
engine's misses went, so every path to a connector passes through it. A full
queue ends the attempt ``overload`` through the connectors' ``finish`` (a read-through
policy may stand there). Like the connector, it forwards work whose client has already
given up: the server does not know, and a read-through policy still waits for it.
Without ``control_plane`` nothing here is built: no station, no tier, no random draws.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from labcore.scenario import ControlPlane as ControlPlaneSpec

from ..kernel import Station, Streams
from .request import OVERLOAD, Attempt

if TYPE_CHECKING:
    from ..kernel.environment import Environment
    from .connector import Connectors
    from .zone import Zone

__all__ = ["ControlPlane"]


class ControlPlane:
    """Control-plane stations, one per zone, in front of the connectors."""

    def __init__(self, env: "Environment", spec: ControlPlaneSpec, zones: list["Zone"],
                 connectors: "Connectors", streams: Streams) -> None:
        self.connectors = connectors
        self.forward: Callable[[Attempt], None] = connectors.submit  # its next hop
        # Two named streams of their own: no other component's draws move.
        policy = spec.policy_time.sampler(streams.numpy("control_plane.policy"))
        token = spec.token_lookup_time.sampler(streams.numpy("control_plane.token"))
        self._service: Callable[[Attempt], float] = lambda attempt: policy() + token()
        self.stations = []
        for zone in zones:
            station = Station(env, f"{zone.name}.control_plane", spec.workers_per_zone,
                              self._service, self._served, spec.queue_limit)
            zone.add_station(station)
            self.stations.append(station)

    def submit(self, attempt: Attempt) -> None:
        if not self.stations[attempt.zone].submit(attempt):
            self.connectors.finish(attempt, OVERLOAD)

    def _served(self, attempt: Attempt) -> None:
        self.forward(attempt)
        return None
