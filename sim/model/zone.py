"""An availability zone: the stations it hosts and the attempts in flight in it.

``fail()`` and ``recover()`` are the narrow methods the AZ-loss fault acts through.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterable

from ..kernel import Station
from .request import UNAVAILABLE, Attempt

if TYPE_CHECKING:
    from .cache import ResultCache

__all__ = ["Zone"]


class Zone:
    """One zone's capacity: its gateway, engine and connector stations."""

    def __init__(self, index: int, name: str) -> None:
        self.index, self.name = index, name
        self.up = True
        self.blackhole = False
        self.stations: list[Station] = []
        self._capacity: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"Zone({self.name!r}, up={self.up})"

    def add_station(self, station: Station) -> None:
        self.stations.append(station)
        self._capacity[station.name] = station.capacity

    def fail(self, inflight: Iterable[Attempt], finish: Callable[[Attempt, int], None],
             cache: "ResultCache", blackhole: bool = False) -> None:
        """Lose all capacity and in-flight work at once (or black-hole it: no answers).

        ``inflight`` is every live attempt in the system; those routed here fail."""
        self.up, self.blackhole = False, blackhole
        for station in self.stations:
            station.fail()
        cache.fail_zone(self.index)
        if not blackhole:
            for attempt in [a for a in inflight if a.alive and a.zone == self.index]:
                finish(attempt, UNAVAILABLE)

    def recover(self, cache: "ResultCache") -> None:
        """Capacity returns, with a cold cache shard."""
        self.up, self.blackhole = True, False
        for station in self.stations:
            station.restore(self._capacity[station.name])
        cache.recover_zone(self.index)
