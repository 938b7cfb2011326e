"""The stand-in's replica lag series (sandbox.admin.lag): bounded, honest about what it
could not sample, and the reading at a loss. No processes are started here."""

from __future__ import annotations

import asyncio
import time

import pytest

from sandbox.admin import lag as lagmod
from sandbox.admin.lag import LagSeries


def test_samples_are_bounded_and_gaps_counted_not_faked() -> None:
    series = LagSeries(capacity=3)
    for value in (0.001, 0.002, 0.003, 0.004):
        series.add((True, value))
    series.add((True, None))  # caught up, idle: nothing at risk, not a zero in the fit
    series.add((False, None))  # no replica streams
    series.add(None)  # the primary did not answer
    data = series.json()
    assert data["samples"] == [0.002, 0.003, 0.004]  # the oldest dropped
    assert (data["idle"], data["unavailable"]) == (1, 2)
    series.clear()
    assert series.json()["samples"] == [] and series.json()["idle"] == 0


def test_the_loss_reading_keeps_the_lag_and_says_when() -> None:
    series = LagSeries()
    before = time.time()
    assert series.loss("pg-primary", (True, 0.0031))["seconds"] == 0.0031
    assert series.json()["at_loss"]["at"] >= before
    idle = series.loss("pg-primary", (True, None))
    assert idle["seconds"] == 0.0 and idle["idle"] is True  # caught up: RPO 0
    assert series.loss("pg-primary", None)["seconds"] is None  # unknown, not 0
    assert series.loss("pg-primary", (False, None))["seconds"] is None  # no replica


def test_the_sampler_reads_the_current_primary_every_interval(
        monkeypatch: pytest.MonkeyPatch) -> None:
    ports: list[int] = []

    async def fake_read(port: int) -> tuple[bool, float | None]:
        ports.append(port)
        return True, 0.002

    monkeypatch.setattr(lagmod, "read_lag", fake_read)
    series = LagSeries()
    primary = [5432]

    async def run() -> None:
        task = asyncio.create_task(lagmod.sample_forever(series, lambda: primary[0], 0.01))
        await asyncio.sleep(0.055)
        primary[0] = 5433  # promoted: the sampler follows the new primary
        await asyncio.sleep(0.055)
        task.cancel()

    asyncio.run(run())
    assert len(series.samples) >= 4 and set(series.samples) == {0.002}
    assert ports[0] == 5432 and ports[-1] == 5433
