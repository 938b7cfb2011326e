"""The scenario's control-plane tier on the stand-in's connector path
(``topology.control_plane``).

In the simulator (``sim/model/control_plane.py``) every fetch that reaches the connectors
first holds one control-plane worker of its zone for ``policy_time`` + ``token_lookup_time``
(an OPA-style policy check, then the tenant's token from the secret store), then queues
for a connector. The stand-in does the same in each zone's connector: a fetch holds a slot
of a pool of ``workers`` (FIFO beyond, ``503 OVERLOADED`` past ``queue_limit``) for a
policy and a lookup time drawn from the scenario's distributions (named streams seeded like
the simulator's, per zone), as the mock providers draw their latency; the real token read
from Redis happens after, with the provider call. The pool's running totals
(``sandbox/slots.py``) are the ``control_plane.utilization`` a runner measures. Without
``control_plane`` in the scenario there is no such tier (``None``): a fetch goes straight
to the connector's own slots, as before.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from labcore.distributions import Sampler
from sandbox.errors import ApiError
from sandbox.provider_config import parse_distribution
from sandbox.sections import slots_of
from sandbox.slots import Slots
from sandbox.standin import derive_seed

__all__ = ["ControlPlaneTier", "control_plane_section"]

_FIELDS = {"workers", "queue_limit", "policy_time", "token_lookup_time", "seed"}


def control_plane_section(body: Any) -> dict[str, Any] | None:
    """Validate the connector's ``control_plane`` section (``None``: no tier); 400 naming
    the field otherwise."""
    if body is None:
        return None
    where = "connector.control_plane"
    if not isinstance(body, dict) or set(body) != _FIELDS:
        raise ApiError(400, "BAD_REQUEST", f"{where} must be null or have exactly the "
                       f"fields {sorted(_FIELDS)}")
    workers, queue = slots_of(body, where)
    if workers is None:
        raise ApiError(400, "BAD_REQUEST", f"{where}.workers must be an integer")
    seed = body["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ApiError(400, "BAD_REQUEST", f"{where}.seed must be a non-negative integer")
    for field in ("policy_time", "token_lookup_time"):
        parse_distribution(body[field], f"{where}.{field}")
    return {**body, "workers": workers, "queue_limit": queue}


class ControlPlaneTier:
    """One zone's control-plane pool and its two service-time samplers."""

    def __init__(self, zone: str, section: dict[str, Any]) -> None:
        self.section = section
        self.slots = Slots(f"control-plane-{zone}", section["workers"], section["queue_limit"])
        self.policy = self._sampler("policy_time", "control_plane.policy", zone)
        self.lookup = self._sampler("token_lookup_time", "control_plane.token", zone)

    def _sampler(self, field: str, stream: str, zone: str) -> Sampler:
        dist = parse_distribution(self.section[field], field)
        seed = derive_seed(int(self.section["seed"]), "numpy", stream, zone)
        sampler: Sampler = dist.sampler(np.random.default_rng(seed))
        return sampler

    async def pass_through(self) -> None:
        """Hold a slot for the policy check and the token lookup (their drawn times), then
        free it: the fetch then queues for a connector slot, as in the simulator."""
        async with self.slots.hold():
            await asyncio.sleep(max(0.0, float(self.policy()) + float(self.lookup())))
