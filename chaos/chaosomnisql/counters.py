"""The stand-in's connector counters, window by window, into the run's window facts.

The simulator's ``connector.fetches_per_key`` (and its incident and peak forms) divide a
window's fetches by the distinct keys called for in it; a client cannot see either. The
stand-in's ``/v1/stats`` reports them (``connector``: fetches, provider calls and distinct
keys over the last N seconds, added up over its connectors). :class:`ConnectorPoller`
reads them at the end of each of the run's windows, over that window's length, and records
them as the window's ``connector.fetches``, ``connector.calls`` and ``connector.keys``
counters, so :mod:`labcore.metrics` computes ``incident.connector.fetches_per_key`` and
``..._peak`` from the chaos run's facts as it does from the simulator's. The stats bins
are whole wall-clock seconds: a window read this way may be shifted by up to a second.
A target whose stats have no ``connector`` section records nothing, and those metrics are
then not measured (:data:`CONNECTOR_METRICS`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .windows import RunWindows

__all__ = ["CONNECTOR_METRICS", "ConnectorPoller"]

#: Metrics computed from these counters: left out of a run that never read any.
CONNECTOR_METRICS = ("connector.", "incident.connector.")
_COUNTERS = (("fetches", "connector.fetches"), ("calls", "connector.calls"),
             ("keys", "connector.keys"))


class ConnectorPoller:
    """A daemon thread reading ``stats(window)`` once per run window until stopped."""

    def __init__(self, windows: RunWindows, stats: Callable[[int], dict[str, Any]]) -> None:
        self.windows, self.stats = windows, stats
        self.seen = False  # the target reported connector counters at least once
        self.errors = 0
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
            connector = self.stats(max(1, round(self.windows.window))).get("connector")
        except Exception:  # a busy or restarting target: this window has no reading
            self.errors += 1
            return
        if not isinstance(connector, dict):
            return
        self.seen = True
        middle = (k + 0.5) * self.windows.window
        for field, name in _COUNTERS:
            self.windows.count(middle, name, int(connector.get(field) or 0))
