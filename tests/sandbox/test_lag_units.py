"""The stand-in's replica lag series (sandbox.admin.lag): bounded, honest about what it
could not sample, and the reading at a loss. No processes are started here."""

from __future__ import annotations

import asyncio
import time

import pytest

from sandbox.admin import lag as lagmod
from sandbox.admin.lag import LagSeries
from sandbox.metadata import LagReading


def test_samples_are_bounded_and_gaps_counted_not_faked() -> None:
    series = LagSeries(capacity=3)
    for n, value in enumerate((0.001, 0.002, 0.003, 0.004)):
        series.add(LagReading(True, value, 1000 + n))
    series.add(LagReading(True, None, 2000))  # caught up, idle: nothing at risk, not a 0
    series.add(LagReading(False, None, 2100))  # no replica streams
    series.add(None)  # the primary did not answer
    data = series.json()
    assert data["samples"] == [0.002, 0.003, 0.004]  # the oldest dropped
    assert (data["idle"], data["unavailable"]) == (1, 2)
    series.clear()
    assert series.json()["samples"] == [] and series.json()["idle"] == 0


def test_a_lag_repeated_without_new_wal_is_idle_not_a_sample() -> None:
    """PostgreSQL shows the last lag it measured for a while after writes stop: counting
    it every second would weigh one stale value as many samples."""
    series = LagSeries()
    series.add(LagReading(True, 0.0004, 500))
    series.add(LagReading(True, 0.0004, 500))  # no WAL since: stale
    series.add(LagReading(True, 0.0004, 500))
    series.add(LagReading(True, 0.0009, 620))  # a write: a new measurement
    assert list(series.samples) == [0.0004, 0.0009] and series.idle == 2


def test_the_loss_reading_keeps_the_lag_and_says_when() -> None:
    series = LagSeries()
    before = time.time()
    assert series.loss("pg-primary", LagReading(True, 0.0031, 9))["seconds"] == 0.0031
    assert series.json()["at_loss"]["at"] >= before
    idle = series.loss("pg-primary", LagReading(True, None, 9))
    assert idle["seconds"] == 0.0 and idle["idle"] is True  # caught up: RPO 0
    assert series.loss("pg-primary", None)["seconds"] is None  # unknown, not 0
    assert series.loss("pg-primary", LagReading(False, None, 9))["seconds"] is None


def test_the_sampler_reads_the_current_primary_every_interval(
        monkeypatch: pytest.MonkeyPatch) -> None:
    ports: list[int] = []

    async def fake_read(port: int) -> LagReading:
        ports.append(port)
        return LagReading(True, 0.002, len(ports))  # WAL moves between samples

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
