"""The stand-in's canary controller: deploy, the automated analysis, rollback, promotion.

``POST /admin/canary`` sends ``weight`` of the traffic to the canary engine running
``version``. When the applied scenario has a canary ``release`` (or the body asks with
``"analysis": true`` or an object of ``release.analysis`` fields), the controller then runs
the scenario's analysis as Argo Rollouts would: every ``analysis.window`` seconds it takes
the gateway's per-version window (:mod:`sandbox.versions`), judges it with the simulator's
own rule (:func:`labcore.canary.judge_window`, the same thresholds and ``min_samples``) and
counts the verdicts with :class:`labcore.canary.CanaryProgress`: the next step's weight,
an automatic rollback, or the promotion (every engine then runs the new version). The
steps are the deploy's weight followed by the scenario's larger steps.

``GET /admin/canary`` answers the canary and, under ``analysis``, the last analysis: its
windows, ``decision`` (``rolled_back``, ``promoted``, ``paused``; null while undecided),
``decision_seconds`` (from the deployment), ``exposed_requests`` (attempts routed to the
new version before the decision) and ``exposed_failures``. The analysis survives the
rollback it made, so a runner reads it afterwards; a new deployment replaces it.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from labcore.canary import CanaryProgress, Tally, judge_window
from labcore.scenario import Canary
from sandbox.admin.leases import parse_lease
from sandbox.admin.plane import ControlPlane
from sandbox.errors import ApiError
from sandbox.standin import STANDIN_FILE
from sandbox.state import read_json_file
from sandbox.versions import deployable_version

__all__ = ["MAX_WINDOW", "Analysis", "analysis_spec", "deploy_canary", "rollback_canary"]

MAX_WINDOW = 3600.0  # seconds: an analysis window longer than the run is a mistake


def _number(body: dict[str, Any], key: str, low: float, high: float, default: float) -> float:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ApiError(400, "BAD_REQUEST", f"{key} must be a number in [{low}, {high}]")
    return float(value)


def _clean(value: Any) -> Any:
    """JSON has no NaN (a window without baseline latencies has no baseline P95)."""
    return None if isinstance(value, float) and math.isnan(value) else value


@dataclass
class Analysis:
    """One deployment's analysis: its windows and, once made, its decision."""

    spec: Canary
    progress: CanaryProgress
    started: float = field(default_factory=time.monotonic)
    windows: list[dict[str, Any]] = field(default_factory=list)
    decision: str | None = None
    decision_seconds: float | None = None
    exposed_requests: int = 0
    exposed_failures: int = 0
    stopped: str | None = None  # why it ended undecided (a rollback by hand, a reset)
    task: asyncio.Task[None] | None = None

    def json(self) -> dict[str, Any]:
        a = self.spec.analysis
        return {"decision": self.decision, "decision_seconds": self.decision_seconds,
                "exposed_requests": self.exposed_requests,
                "exposed_failures": self.exposed_failures, "share": self.progress.share,
                "steps": list(self.progress.steps), "stopped": self.stopped,
                "elapsed_seconds": round(time.monotonic() - self.started, 3),
                "rule": a.model_dump(mode="json"), "windows": self.windows}

    def take(self, window: dict[str, Any]) -> dict[str, Any]:
        """Judge one window taken from the gateway; the judged row."""
        canary, baseline = (Tally(w["n"], w["errors"], w["latencies"])
                            for w in (window["canary"], window["baseline"]))
        row = judge_window(self.spec, canary, baseline)
        row = {k: _clean(v) for k, v in row.items()}
        row.update(time=round(time.monotonic() - self.started, 3), share=self.progress.share)
        self.windows.append(row)
        self.exposed_requests = int(window["exposed"])
        self.exposed_failures += canary.errors
        return row


_DURATIONS = ("window", "latency_p95")


def _seconds(analysis: dict[str, Any]) -> dict[str, Any]:
    """Durations as the schema reads them: a bare number (JSON, the stored release) is
    seconds."""
    return {k: f"{v!r}s" if k in _DURATIONS and isinstance(v, (int, float))
            and not isinstance(v, bool) else v for k, v in analysis.items()}


def analysis_spec(plane: ControlPlane, body: dict[str, Any], version: str) -> Canary | None:
    """The analysis a deployment runs: the applied scenario's ``release`` with the body's
    ``analysis`` fields over it (durations in seconds); None when there is none to run."""
    ask = body.get("analysis")
    release = (read_json_file(plane.layout.root / STANDIN_FILE) or {}).get("release")
    if release is not None and release.get("kind") != "canary":
        release = None  # a blue-green release has no analysis (sandbox.admin.release)
    if ask is False or (ask is None and release is None):
        return None
    if ask is not None and not isinstance(ask, (bool, dict)):
        raise ApiError(400, "BAD_REQUEST", "analysis must be a boolean or an object")
    data = dict(release or {"kind": "canary"})
    data.update(at=0.0, version=version, analysis=_seconds(
        {**(data.get("analysis") or {}), **(ask if isinstance(ask, dict) else {})}))
    try:
        spec = Canary.model_validate(data)
    except (ValidationError, ValueError, TypeError) as exc:
        raise ApiError(400, "BAD_REQUEST", f"bad analysis: {str(exc)[:300]}") from None
    if spec.analysis.window > MAX_WINDOW:
        raise ApiError(400, "BAD_REQUEST", f"analysis window must be at most {MAX_WINDOW:g} s")
    return spec


def _steps(spec: Canary, weight: float) -> tuple[float, ...]:
    return (weight, *[s for s in spec.steps if s > weight]) if weight < 1.0 else (1.0,)


async def deploy_canary(plane: ControlPlane, body: dict[str, Any]) -> dict[str, Any]:
    lease = parse_lease(body)
    version = deployable_version(body.get("version"))
    weight = _number(body, "weight", 0.0, 1.0, math.nan)
    release = {"version": version,
               "error_rate": _number(body, "error_rate", 0.0, 1.0, 0.0),
               "latency_multiplier": _number(body, "latency_multiplier", 1.0, 100.0, 1.0)}
    spec = analysis_spec(plane, body, version) if weight > 0 else None
    # The routing and error draws come from the applied scenario's seed, in the simulator's
    # streams (release.canary.routing/errors): a fixed seed replays them, another seed
    # draws anew. (Both used Random(0) before: every run drew the same canary share.)
    saved = read_json_file(plane.layout.root / STANDIN_FILE) or {}
    seed = int((saved.get("scenario") or {}).get("seed") or 0)
    await _stop(plane, "replaced by a new deployment")
    await plane.post(f"{plane.service_url('engine-canary')}/_control", {**release, "seed": seed})
    await plane.post(f"{plane.gateway_internal}/internal/canary",
                     {"weight": weight, "analysis": spec is not None, "seed": seed})
    plane.canary = {**release, "weight": weight}
    if spec is not None:
        analysis = Analysis(spec, CanaryProgress(spec, _steps(spec, weight)))
        plane.analysis = analysis
        analysis.task = asyncio.create_task(_analyse(plane, analysis))
    granted = plane.leases.grant("canary", lease, lambda: rollback_canary(plane))
    return {**plane.canary, **granted, "analysis": spec is not None}


async def _stop(plane: ControlPlane, why: str) -> None:
    """End a running analysis that has not decided (it is kept, with why it stopped)."""
    analysis = plane.analysis
    if (analysis is None or analysis.task is None or analysis.task.done()
            or analysis.task is asyncio.current_task()):  # the analysis acting on its decision
        return
    analysis.task.cancel()
    if analysis.decision is None:
        analysis.stopped = why


async def _analyse(plane: ControlPlane, analysis: Analysis) -> None:
    """Window after window until a decision, each window timed from the deployment."""
    window = analysis.spec.analysis.window
    while analysis.decision is None:
        due = analysis.started + window * (len(analysis.windows) + 1)
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        try:
            taken = await plane.post(f"{plane.gateway_internal}/internal/canary/window")
        except ApiError as err:  # no window to judge: undecided, and say why
            analysis.stopped = f"the gateway's window could not be read: {err.message}"
            plane.audit.write(who="canary-analysis", method="STOPPED", path="window",
                              status=analysis.stopped)
            return
        share = analysis.progress.share
        decision = analysis.progress.observe(analysis.take(taken))
        if decision is not None:
            await _decide(plane, analysis, decision)
        elif analysis.progress.share != share:
            await plane.post(f"{plane.gateway_internal}/internal/canary",
                             {"weight": analysis.progress.share})
            if plane.canary is not None:
                plane.canary["weight"] = analysis.progress.share


async def _decide(plane: ControlPlane, analysis: Analysis, decision: str) -> None:
    """Act on the decision, then publish it: a reader who sees the decision sees it done."""
    seconds = round(time.monotonic() - analysis.started, 3)
    if decision == "rolled_back":
        await rollback_canary(plane)
    elif decision == "promoted":
        await _promote(plane)
    analysis.decision, analysis.decision_seconds = decision, seconds
    plane.audit.write(who="canary-analysis", method="DECISION", path=decision,
                      status=f"after {seconds:g}s, {analysis.exposed_requests} attempts exposed")


async def _promote(plane: ControlPlane) -> None:
    """Every zone engine runs the new version; the canary engine takes no more traffic."""
    release = {k: v for k, v in (plane.canary or {}).items() if k != "weight"}
    for name in plane.state["services"]:
        if name.startswith("engine-") and name != "engine-canary":
            await plane.post(f"{plane.service_url(name)}/_control", release)
    await plane.post(f"{plane.gateway_internal}/internal/canary", {"weight": 0.0})
    plane.promoted_release = True
    if plane.canary is not None:
        plane.canary = {**plane.canary, "weight": 0.0, "promoted": True}


async def _reset_engines(plane: ControlPlane) -> None:
    names = [n for n in plane.state["services"] if n.startswith("engine-")]
    if not plane.promoted_release:
        names = ["engine-canary"]
    for name in names:
        try:
            await plane.post(f"{plane.service_url(name)}/_control", {"version": "v1"})
        except ApiError:
            # Unreachable means stopped or restarting (a lost or just-restored zone); it
            # comes back as v1 with no injected faults.
            pass
    plane.promoted_release = False


async def rollback_canary(plane: ControlPlane) -> dict[str, Any]:
    """Back to v1 everywhere: the canary's weight 0 first (stop sending it traffic), then
    the canary engine (and every engine after a promotion) reset."""
    plane.leases.end("canary")
    await _stop(plane, "rolled back by hand before a decision")
    await plane.post(f"{plane.gateway_internal}/internal/canary",
                     {"weight": 0.0, "analysis": False})
    await _reset_engines(plane)
    plane.canary = None
    return {"weight": 0.0, "rolled_back": True}
