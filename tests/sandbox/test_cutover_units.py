"""The gateway's blue-green cutover without processes (sandbox.cutover, sandbox.gateway).

Engines are replaced by a fake attempt that takes a given time per zone, so the switch,
the drain and the teardown are checked on the event loop alone: which colour gets new
attempts, what is counted in flight, what is cut and when, and that the gateway's own
retry in another zone never rescues a cut attempt.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from sandbox.errors import ApiError
from sandbox.gateway import Gateway, GatewayConfig, QueryContext, build_gateway
from sandbox.routing import Backend

ZONES = ("az-a", "az-b", "az-c")


def _gateway(seconds: float, zone_retry: bool) -> tuple[Gateway, list[str]]:
    config = GatewayConfig({z: f"http://127.0.0.1:1/{z}" for z in ZONES}, "http://127.0.0.1:1/c",
                           "az-c", [], green={z: f"http://127.0.0.1:1/g{z}" for z in ZONES})
    gw = build_gateway(config)
    gw.zone_retry = zone_retry
    served: list[str] = []

    async def attempt(backend: Backend, info: QueryContext, deadline: float) -> Any:
        served.append(backend.name)
        await asyncio.sleep(seconds)
        return backend.colour

    gw._attempt = attempt  # type: ignore[method-assign]
    return gw, served


async def _outcome(gw: Gateway) -> Any:
    try:
        return await gw.forward(QueryContext(tenant="acme", user="u1"))
    except ApiError as err:
        return err.status, err.code


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.mark.parametrize("zone_retry", [True, False])
def test_attempts_outliving_the_drain_are_cut_and_not_retried(zone_retry: bool) -> None:
    async def scenario() -> tuple[list[Any], dict[str, Any], list[str]]:
        gw, served = _gateway(1.0, zone_retry)
        blue = [asyncio.create_task(_outcome(gw)) for _ in range(3)]
        await asyncio.sleep(0.01)
        switched = gw.cut_over("v2", 0.2)
        assert switched["inflight_at_switch"] == 3.0 and switched["active"] == "green"
        green = asyncio.create_task(_outcome(gw))
        answers = await asyncio.gather(*blue, green)
        return answers, gw.cutover.json(), served

    answers, facts, served = _run(scenario())
    assert answers == [(503, "ENGINE_UNAVAILABLE")] * 3 + ["green"]
    assert facts["dropped_requests"] == 3.0 and facts["drain_seconds"] is None
    assert len(served) == 4  # one attempt each: no zone retry after the cut
    assert [name.startswith("engine-green-") for name in served] == [False] * 3 + [True]


def test_a_drain_longer_than_the_attempts_cuts_nothing() -> None:
    async def scenario() -> tuple[list[Any], dict[str, Any]]:
        gw, _ = _gateway(0.3, True)
        blue = [asyncio.create_task(_outcome(gw)) for _ in range(2)]
        await asyncio.sleep(0.01)
        gw.cut_over("v2", 5.0)
        answers = await asyncio.gather(*blue)
        await asyncio.sleep(0.05)
        return answers, gw.cutover.json()

    answers, facts = _run(scenario())
    assert answers == ["blue", "blue"]
    assert facts["phase"] == "done" and facts["dropped_requests"] == 0.0
    assert 0.2 < facts["drain_seconds"] < 1.0, facts


def test_the_drain_is_timed_by_the_checks_schedule_not_by_a_late_event_loop() -> None:
    """Blue empties between two checks; the report is the scheduled time of the check that
    found it empty, even when the loop runs that check late (here: blocked 30 ms), and a
    drain found at the deadline's check is within the drain timeout, never above it."""
    async def scenario(seconds: float, timeout: float) -> dict[str, Any]:
        gw, _ = _gateway(seconds, True)
        blue = asyncio.create_task(_outcome(gw))
        await asyncio.sleep(0.01)
        gw.cut_over("v2", timeout)
        await blue
        time.sleep(0.03)  # the event loop is late for the next check
        await asyncio.sleep(0.3)
        return dict(gw.cutover.json())

    facts = _run(scenario(0.25, 5.0))
    assert facts["dropped_requests"] == 0.0 and facts["drain_seconds"] == 0.3, facts
    facts = _run(scenario(0.45, 0.5))
    assert facts["dropped_requests"] == 0.0 and facts["drain_seconds"] == 0.5, facts


def test_nothing_in_flight_drains_at_once_and_reset_goes_back_to_blue() -> None:
    async def scenario() -> tuple[dict[str, Any], dict[str, Any], Any]:
        gw, _ = _gateway(0.0, True)
        gw.cut_over("v2", 5.0)
        await asyncio.sleep(0.01)
        done = gw.cutover.json()
        reset = gw.reset_cutover()
        return done, reset, await _outcome(gw)

    done, reset, after = _run(scenario())
    assert done["inflight_at_switch"] == 0.0 and done["drain_seconds"] == 0.0
    assert reset["active"] == "blue" and reset["phase"] == "idle"
    assert after == "blue"


def test_a_cutover_while_draining_or_without_green_is_409() -> None:
    async def scenario() -> None:
        gw, _ = _gateway(1.0, True)
        task = asyncio.create_task(_outcome(gw))
        await asyncio.sleep(0.01)
        gw.cut_over("v2", 5.0)
        with pytest.raises(ApiError) as err:
            gw.cut_over("v3", 5.0)
        assert err.value.status == 409
        gw.reset_cutover()
        await task
        gw.router.standby = []
        with pytest.raises(ApiError) as err:
            gw.cut_over("v3", 5.0)
        assert err.value.status == 409

    _run(scenario())
