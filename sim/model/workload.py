"""The workload: tenants' open-loop Poisson arrivals and what each query asks for.

Arrival rates follow the scenario's profile (piecewise linear, or a diurnal cosine) times
any traffic surge of the tenant; a non-homogeneous Poisson process is drawn by thinning
against a per-segment upper bound, so constant stretches cost one draw per arrival.
Each tenant has its own arrival and attribute streams: scenarios that differ only in
faults see the same queries at the same times (common random numbers).
"""

from __future__ import annotations

import random
from heapq import heappush
from typing import TYPE_CHECKING, Callable, Final

import numpy as np

from labcore.distributions import BLOCK
from labcore.scenario import Scenario
from labcore.workload import RateFunction, mix_cdf, zipf_cdf

from ..kernel import Streams
from ..kernel.events import NATIVE, NORMAL, Handler, Kernel
from ..kernel.packed import floats, from_floats, from_ints, ints
from .client import Client
from .request import Request

if TYPE_CHECKING:
    from mypy_extensions import i64

    from ..kernel.environment import Environment

__all__ = ["Workload"]


#: Pre-drawn values are handed to the hot path this many at a time, so a tenant holds a
#: few kilobytes of them rather than a block's half megabyte (with a thousand tenants,
#: that was most of a run's memory).
CHUNK: Final = 256


class _TenantStream:
    """One tenant's arrival state and its chunks of pre-drawn gaps and queries.

    One chunk, two forms. As plain Python, a list of Python values, reversed, that the
    hot path pops from the end (the interpreter's fastest way to hand them out). Compiled,
    a packed array (:mod:`sim.kernel.packed`) and a cursor: no object per value, and the
    next values of a tenant side by side in memory, where a list's values lie wherever
    they were allocated (with hundreds of tenants, each arrival missed the processor's
    cache on the list, the tuple and each of its numbers). The values are the same.
    """

    __slots__ = ("index", "rate", "segments", "seg", "bound", "constant", "end", "gaps",
                 "thinning", "attrs", "users", "target_cdf", "targets", "key_cdf",
                 "n_targets", "keys", "gap_buffer", "query_buffer", "gap_chunk", "gap_pos",
                 "query_chunk", "query_pos", "query_block", "deterministic", "pins")

    def __init__(self, index: int, rate: RateFunction, streams: Streams, name: str,
                 users: int, target_cdf: list[float], targets: list[int],
                 key_cdf: np.ndarray, n_targets: int) -> None:
        self.index, self.rate, self.segments = index, rate, rate.segments
        self.seg, self.bound, self.constant = 0, 0.0, True
        self.end = 0.0  # the current segment's end (segments[seg][1], unboxed)
        self.gaps = streams.numpy(f"workload.arrivals.{name}")
        self.thinning = streams.get(f"workload.thinning.{name}")
        self.attrs = streams.numpy(f"workload.queries.{name}")
        self.users, self.target_cdf, self.targets = users, np.asarray(target_cdf), targets
        self.key_cdf, self.n_targets, self.keys = key_cdf, n_targets, len(key_cdf)
        self.gap_buffer: list[float] = []  # plain Python
        self.query_buffer: list[tuple[int, int, int]] = []  # plain Python
        self.gap_chunk = floats(0, 0.0)  # compiled: the chunk and the next one's position
        self.gap_pos: i64 = 0
        self.query_chunk = ints(0)  # compiled: (user, target, key) after one another
        self.query_pos: i64 = 0
        self.query_block: list[np.ndarray] = []  # a block's queries not yet in a chunk
        self.deterministic = False
        #: Zone-targeted surges of the tenant: (stream, zone index by name); None without.
        self.pins: tuple[random.Random, dict[str, int]] | None = None

    def pin(self, t: float) -> int:
        """The zone an arrival at ``t`` is sent to by a zone-targeted surge (-1: none):
        each active such surge takes its share of the arrivals (one draw only while one
        is active)."""
        assert self.pins is not None
        shares = self.rate.zone_shares(t)
        if not shares:
            return -1
        rng, zones = self.pins
        u = rng.random()
        for zone, share in shares:
            if u < share:
                return zones[zone]
            u -= share
        return -1

    def gap(self) -> float:
        """The next standard exponential draw (divide by the rate), drawn ``CHUNK`` at a
        time (the draws are sequential: the same values as in blocks of any size)."""
        if NATIVE:
            pos = self.gap_pos
            if pos == len(self.gap_chunk):
                self.gap_chunk = from_floats(self._gap_chunk())
                pos = 0
            self.gap_pos = pos + 1
            return self.gap_chunk[pos]
        buffer = self.gap_buffer
        if not buffer:
            chunk = self._gap_chunk().tolist()
            chunk.reverse()  # pop() from the end hands them out in drawn order
            buffer.extend(chunk)
        return buffer.pop()

    def _gap_chunk(self) -> np.ndarray:
        if self.deterministic:  # evenly spaced arrivals: every gap is one mean gap
            return np.ones(CHUNK)
        return self.gaps.standard_exponential(CHUNK)

    def next_query(self) -> tuple[int, int, int]:
        """(user, target, cache key) of the next query. A block's uniforms are drawn at
        once (its layout fixes which draw feeds which query), kept as compact arrays, and
        handed out ``CHUNK`` queries at a time."""
        if NATIVE:
            pos = self.query_pos
            if pos == len(self.query_chunk):
                users, targets, keys = self._query_chunk()
                self.query_chunk = from_ints(
                    np.stack((users, targets, keys), axis=1).astype(np.int64).ravel())
                pos = 0
            self.query_pos = pos + 3
            chunk = self.query_chunk
            return chunk[pos], chunk[pos + 1], chunk[pos + 2]
        buffer = self.query_buffer
        if not buffer:
            users, targets, keys = self._query_chunk()
            queries = list(zip(users.tolist(), targets.tolist(), keys.tolist()))
            queries.reverse()
            buffer.extend(queries)
        return buffer.pop()

    def _query_chunk(self) -> list[np.ndarray]:
        """The next ``CHUNK`` queries' users, targets and keys (fewer at a block's end)."""
        if not self.query_block or not len(self.query_block[0]):
            self.query_block = self._draw_block()
        users, targets, keys = self.query_block
        self.query_block = [users[CHUNK:], targets[CHUNK:], keys[CHUNK:]]
        return [users[:CHUNK], targets[:CHUNK], keys[:CHUNK]]

    def _draw_block(self) -> list[np.ndarray]:
        """The block's queries, each array in the narrowest integer type holding its
        largest possible value (a quarter of int64's memory; ``tolist`` gives the same
        Python ints)."""
        u = self.attrs.random((3, BLOCK))
        users = (u[0] * self.users).astype(np.int64)
        choice = np.searchsorted(self.target_cdf, u[1], side="right")
        targets = np.asarray(self.targets)[np.minimum(choice, len(self.targets) - 1)]
        ranks = np.minimum(np.searchsorted(self.key_cdf, u[2], side="right"), self.keys - 1)
        keys = (self.index * self.n_targets + targets) * self.keys + ranks
        bounds = (self.users, self.n_targets, (self.index + 1) * self.n_targets * self.keys)
        return [a.astype(np.min_scalar_type(b)) for a, b in zip((users, targets, keys), bounds)]


class Workload(Handler):
    """Generates requests and hands each to ``send`` (the client).

    Each candidate arrival is a :class:`Request` scheduled as its own event; thinning
    may drop it, and only accepted arrivals draw their query attributes and an id.
    """

    def __init__(self, env: "Environment", scenario: Scenario, streams: Streams,
                 targets: list[str], send: Callable[[Request], None]) -> None:
        self.env, self.send = env, send
        owner = getattr(send, "__self__", None)
        #: The client whose own ``send`` this is, called directly (compiled, a call through
        #: the field is a generic Python call, once a request); ``None``: through the field.
        self._client: Client | None = (
            owner if isinstance(owner, Client) and send == owner.send else None)
        self.kernel: Kernel = env.kernel
        wl, cache = scenario.workload, scenario.topology.cache
        self.keys = cache.keys
        self.n_targets = len(targets)
        self.key_cdf = np.asarray(zipf_cdf(cache.keys, cache.zipf_s))
        self.next_id = 0
        self.streams: list[_TenantStream] = []
        for index, (name, tenant) in enumerate(wl.tenants.items()):
            mix = list(tenant.mix.items())
            cdf = mix_cdf(share for _, share in mix)
            rate = RateFunction(tenant.rate * wl.scale, scenario, name)
            ts = _TenantStream(index, rate, streams, name, tenant.users, cdf,
                               [targets.index(t) for t, _ in mix], self.key_cdf, self.n_targets)
            ts.deterministic = tenant.arrivals == "deterministic"
            if any(s.zone is not None for s in rate.surges):  # issue 13: zone-targeted surges
                zones = {z: i for i, z in enumerate(scenario.topology.zones)}
                ts.pins = (streams.get(f"workload.surge_zone.{name}"), zones)
            self.streams.append(ts)
            if tenant.closed_loop is None:  # closed-loop users send on their own (users.py)
                self._next(ts, env.now)

    def _next(self, ts: _TenantStream, now: float) -> None:
        """Schedule the tenant's next candidate arrival after ``now``."""
        segments = ts.segments
        while ts.seg < len(segments):
            start, end, bound, constant = segments[ts.seg]
            if bound > 0.0:
                t = max(now, start) + ts.gap() / bound
                if t < end:
                    ts.bound, ts.constant, ts.end = bound, constant, end
                    request = Request(0, ts.index, 0, 0, 0, t)
                    request.handler = self
                    kernel = self.kernel  # at now + (t - now), not t: the times of old
                    kernel.push_light(kernel.now + (t - kernel.now), request)
                    return
            now = end  # memoryless: restart the draw at the segment boundary
            ts.seg += 1

    def on_light(self, request: Request) -> None:
        """A candidate arrival: thinning may drop it; then the tenant's next one."""
        ts = self.streams[request.tenant]
        now = request.t0
        if ts.constant or ts.thinning.random() * ts.bound <= ts.rate(now):
            if NATIVE:
                request.user, request.target, request.key = ts.next_query()
            else:
                buffer = ts.query_buffer
                request.user, request.target, request.key = (
                    buffer.pop() if buffer else ts.next_query()
                )
            self.next_id += 1
            request.id = self.next_id
            if ts.pins is not None:
                request.pin = ts.pin(now)
            client = self._client
            if client is not None:
                client.send(request)
            else:
                self.send(request)
        if ts.constant:  # fast path: the next arrival is likely in the same segment
            if NATIVE:
                t = now + ts.gap() / ts.bound
            else:
                gaps = ts.gap_buffer
                t = now + (gaps.pop() if gaps else ts.gap()) / ts.bound
            if t < ts.end:
                request = Request(0, ts.index, 0, 0, 0, t)
                request.handler = self
                kernel = self.kernel
                if NATIVE:
                    kernel.push_light(t, request)
                else:  # Kernel.push, inlined
                    heappush(kernel.tuples, (t, NORMAL, next(kernel.eids), request))
                return
            now = ts.end
            ts.seg += 1
        self._next(ts, now)
