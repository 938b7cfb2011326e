"""The stand-in's connector counters, window by window, into the run's window facts.

The simulator's ``connector.fetches_per_key`` (and its incident and peak forms) divide a
window's fetches by the distinct keys fetched in it; a client cannot see either. The
stand-in's ``/v1/stats`` reports them (``connector``: fetches, provider calls and distinct
keys over the last N seconds, added up over its connectors). :class:`ConnectorPoller`
reads them at the end of each of the run's windows, over that window's length, and records
them as the window's ``connector.fetches``, ``connector.calls`` and ``connector.keys``
counters, and the provider's 401s and 429s per tenant as ``connector.unauthorized[<tenant>]``
and ``connector.rate_limited[<tenant>]`` (the simulator's counters: one per provider call so
answered), so :mod:`labcore.metrics` computes ``incident.connector.fetches_per_key``,
``..._peak``, ``connector.unauthorized`` and ``connector.rate_limited`` from the chaos
run's facts as it does from the simulator's. The stats bins are whole wall-clock
seconds: a window read this way may be shifted by up to a second. A target whose stats
have no ``connector`` section records nothing, and those metrics are then not measured
(:data:`CONNECTOR_METRICS`).

The same reading carries each zone's engine and connector worker pool (``engine_pools``,
``pools``: running totals of slot-seconds busy and available, ``sandbox/slots.py``). The
poller takes each pool's difference since its last reading, adds the pools of a tier up
and records them as the window's tier row (:meth:`RunWindows.tier`), so
``engine.utilization`` is the simulator's ``busy_area / capacity_area`` over the check's
windows. A target without pool totals (or without a worker limit) records no tier, and
the tier's metrics are then not measured.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .windows import RunWindows

__all__ = ["CONNECTOR_METRICS", "ConnectorPoller", "pool_delta"]

#: Metrics computed from these counters: left out of a run that never read any.
CONNECTOR_METRICS = ("connector.", "incident.connector.")
_COUNTERS = (("fetches", "connector.fetches"), ("calls", "connector.calls"),
             ("keys", "connector.keys"))
#: Per-tenant counts of provider answers (``{tenant: n}`` in the stats).
_BY_TENANT = ("unauthorized", "rate_limited")
#: A worker pool's running totals (``sandbox/slots.py``) → the simulator's station fields.
_POOL_FIELDS = (("started", "started"), ("queued_total", "waited"),
                ("wait_seconds", "wait_sum"), ("busy_seconds", "busy_area"),
                ("capacity_seconds", "capacity_area"), ("refused", "rejected"))
#: The stats' pool sections and the tier each one is.
_POOLS = (("engine_pools", "engine"), ("pools", "connector"),
          ("control_plane_pools", "control_plane"))


def pool_delta(now: dict[str, Any], last: dict[str, Any] | None) -> dict[str, float] | None:
    """One pool's tier fields since the ``last`` reading (None: nothing to record).

    The first reading of a pool is only a baseline (its totals run from the process's
    start); totals that went down mean the process restarted (a restored zone), so the
    window gets what it did since. A pool without a worker limit has no capacity: its
    utilization is undefined and it is not recorded."""
    if last is None or now.get("workers") is None:
        return None
    restarted = float(now.get("busy_seconds") or 0) < float(last.get("busy_seconds") or 0) \
        or int(now.get("started") or 0) < int(last.get("started") or 0)
    base = {} if restarted else last
    return {field: float(now.get(key) or 0) - float(base.get(key) or 0)
            for key, field in _POOL_FIELDS}


class ConnectorPoller:
    """A daemon thread reading ``stats(window)`` once per run window until stopped."""

    def __init__(self, windows: RunWindows, stats: Callable[[int], dict[str, Any]]) -> None:
        self.windows, self.stats = windows, stats
        self.seen = False  # the target reported connector counters at least once
        self.errors = 0
        self._pools: dict[str, dict[str, Any]] = {}  # each pool's last reading
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="omnisql-connector-poller",
                                        daemon=True)

    def start(self) -> ConnectorPoller:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10.0)

    def _run(self) -> None:
        k, width = 0, self.windows.window
        while not self._stop.wait(max(0.0, (k + 1) * width - self.windows.now())):
            self.read(k)
            k += 1

    def read(self, k: int) -> None:
        """Record window ``k``'s counters (the last ``window`` seconds, read now)."""
        try:
            data = self.stats(max(1, round(self.windows.window)))
        except Exception:  # a busy or restarting target: this window has no reading
            self.errors += 1
            return
        middle = (k + 0.5) * self.windows.window
        self._read_pools(data, middle)
        connector = data.get("connector")
        if not isinstance(connector, dict):
            return
        self.seen = True
        for field, name in _COUNTERS:
            self.windows.count(middle, name, int(connector.get(field) or 0))
        for field in _BY_TENANT:  # provider 401s and 429s, per tenant, as the simulator's
            for tenant, n in (connector.get(field) or {}).items():
                self.windows.count(middle, f"connector.{field}[{tenant}]", int(n))

    def _read_pools(self, data: dict[str, Any], middle: float) -> None:
        """Each pool's work since the last reading, added up per tier (a lost zone's pool
        is absent: it adds no capacity, as a failed station has none in the simulator)."""
        for section, tier in _POOLS:
            pools = data.get(section)
            if not isinstance(pools, dict):
                continue
            total: dict[str, float] = {}
            for name, now in pools.items():
                delta = pool_delta(now, self._pools.get(name))
                self._pools[name] = now
                for field, value in (delta or {}).items():
                    total[field] = total.get(field, 0.0) + value
            if total:
                self.windows.tier(middle, tier, total)
