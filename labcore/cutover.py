"""The blue-green cutover's facts as a real runner reads them from the stand-in.

The stand-in's gateway acts the cutover out and keeps its account (``GET /admin/release``,
``sandbox/admin/release.py``); :func:`cutover_facts` turns that account into the
simulator's whole-run facts (``cutover.*``, :mod:`labcore.registry`). Both real runners
(the chaos probe and the Locust load) use it, so neither re-derives them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CUTOVER_METRICS", "RELEASE_PATH", "cutover_facts"]

#: The facts a runner reads (the simulator's names).
CUTOVER_METRICS = ("cutover.inflight_at_switch", "cutover.dropped_requests",
                   "cutover.drain_seconds")
#: The stand-in's account of the last cutover.
RELEASE_PATH = "/admin/release"


def cutover_facts(status: dict[str, Any]) -> dict[str, float | None]:
    """The ``cutover.*`` facts of the stand-in's account; empty while the drain runs (or
    when no cutover was made): not a measurement yet. ``drain_seconds`` None: blue did not
    drain by its deadline."""
    if status.get("phase") != "done":
        return {}
    drained = status.get("drain_seconds")
    return {"cutover.inflight_at_switch": float(status["inflight_at_switch"]),
            "cutover.dropped_requests": float(status["dropped_requests"]),
            "cutover.drain_seconds": None if drained is None else float(drained)}
