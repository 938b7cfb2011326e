"""The region loss's plain logic (issue 18): the failover section the stand-in is configured
with, the timeline's draws, and the gateway's DNS-shift gate (sandbox.region)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from labcore.scenario_file import read_scenario
from sandbox.region import RegionGate, draw_timeline, failover_section
from sandbox.standin import config_from_scenario, default_config
from sandbox.testing import REPO

REGIONAL = REPO / "scenarios/regional_failover.yaml"


def test_the_standin_profile_pins_the_timeline_to_the_scenarios_constants() -> None:
    scenario = read_scenario(REGIONAL, "standin").scenario
    section = config_from_scenario(scenario)["failover"]
    assert section == failover_section(scenario)
    assert draw_timeline(section) == {"detection": 30.0, "decision": 30.0, "spinup": 30.0}
    assert section["dns_ttl_seconds"] == 60.0 and section["missing"] == []
    assert section["blackhole"] is False and default_config()["failover"] is None


def test_a_drawn_timeline_is_seeded_and_follows_the_distributions() -> None:
    scenario = read_scenario(REGIONAL).scenario  # the lognormals of the full scenario
    section = failover_section(scenario)
    assert section is not None
    first = draw_timeline(section)
    assert first == draw_timeline(section)  # same seed, same draws
    assert draw_timeline({**section, "seed": 2}) != first
    assert all(v > 0 for v in first.values())
    blackholed = read_scenario(REGIONAL, "standin", ["faults.0.blackhole=true",
                                                     "failover.replicated=[metadata]"])
    section = failover_section(blackholed.scenario)
    assert section is not None and section["blackhole"] is True
    assert section["missing"] == ["kms_keys", "connector_secrets"]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_gate_refuses_a_lost_region_and_shifts_over_one_ttl() -> None:
    clock = Clock()
    gate = RegionGate(clock=clock)
    assert gate.admit() == "pass"
    gate.set("down")
    assert {gate.admit() for _ in range(50)} == {"refuse"}
    gate.set("down", blackhole=True)
    assert gate.admit() == "hang"
    gate.set("shifting", ttl=10.0, seed=1)
    shares = []
    for elapsed in (0.0, 2.5, 5.0, 7.5):
        clock.now = 100.0 + elapsed
        admitted = sum(gate.admit() == "pass" for _ in range(2000)) / 2000
        shares.append(admitted)
        assert admitted == pytest.approx(elapsed / 10.0, abs=0.04)
    assert shares == sorted(shares)
    clock.now = 110.0
    assert gate.admit() == "pass" and gate.phase == "up"  # the shift is over


def test_a_shift_without_a_ttl_moves_everyone_at_once() -> None:
    gate = RegionGate()
    assert gate.set("shifting", ttl=0.0)["phase"] == "up" and gate.admit() == "pass"


def test_the_secondary_starts_within_the_spin_up_delay_not_after_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The scenario's spin-up is the secondary coming up: its processes start when the
    spin-up begins (after detection and decision), and a start shorter than the delay
    is not added to it (the switch is at the timeline's 1.5 s, not 1.5 s + the start)."""
    from sandbox.admin import region as admin_region

    started: list[float] = []

    async def bring_up(plane: object, section: object) -> list[str]:
        started.append(time.time() - lost_at)
        await asyncio.sleep(0.5)  # the processes' start, shorter than the spin-up
        return []

    async def gateway(*args: object) -> None:
        return None

    monkeypatch.setattr(admin_region, "_bring_up_secondary", bring_up)
    monkeypatch.setattr(admin_region, "_gateway_region", gateway)
    lost_at = time.time()
    plane = SimpleNamespace(region={"lost_at": lost_at}, audit=SimpleNamespace(
        write=lambda **kwargs: None))
    # Seconds long, so that an event loop waking late on a busy machine (it never wakes
    # early) stays inside the half second that tells "within the spin-up" from "after it".
    delays = {"detection": 0.25, "decision": 0.25, "spinup": 1.0}
    asyncio.run(admin_region._fail_over(plane, {"dns_ttl_seconds": 0.0}, delays))
    assert started and 0.5 <= started[0] < 1.0
    assert 1.5 <= plane.region["switch_seconds"] < 2.0  # 2.0: the start added to the spin-up


SNAPSHOT_RPO = REPO / "scenarios/regional_failover_snapshot_rpo.yaml"


@pytest.mark.parametrize("seed", [1, 7])
def test_the_snapshot_schedule_has_the_simulators_phase(seed: int) -> None:
    """The stand-in's snapshot phase for a run seed is the simulator's (its first
    replication): the simulator's RPO at the loss is (loss − phase) mod interval."""
    from sandbox.admin.snapshots import snapshot_phase
    from sim import compute_metrics, simulate

    scenario = read_scenario(SNAPSHOT_RPO, "standin",
                             ["workload.scale=0.002", "run.duration=6m"]).scenario
    section = failover_section(scenario)
    assert section is not None
    meta = section["metadata"]
    assert meta == {"mode": "snapshot", "interval_seconds": 900.0, "snapshots": True}
    rpo = compute_metrics(simulate(scenario, seed))["rpo_seconds"]
    loss = scenario.faults[0].at
    phase = snapshot_phase(seed, meta["interval_seconds"])
    assert rpo == pytest.approx((loss - phase) % meta["interval_seconds"], abs=1e-6)


def test_snapshots_are_due_on_the_schedule_after_its_start() -> None:
    from sandbox.admin.snapshots import next_due

    assert next_due(100.0, 5.0, 30.0, 50.0) == 105.0  # before the first: the first
    assert next_due(100.0, 5.0, 30.0, 105.0) == 105.0
    assert next_due(100.0, 5.0, 30.0, 105.5) == 135.0
    assert next_due(100.0, 5.0, 30.0, 200.0) == 225.0


def test_only_a_replicated_snapshot_is_honoured() -> None:
    from sandbox.standin import not_honoured

    tenants = ("acme", "globex", "initech", "umbrella")
    gaps = not_honoured(read_scenario(SNAPSHOT_RPO, "standin").scenario, tenants)
    assert "failover.metadata.mode" not in gaps and "failover.replicated" not in gaps
    shipping = read_scenario(SNAPSHOT_RPO, "standin",
                             ["failover.metadata.mode=log_shipping"]).scenario
    assert "log_shipping" in not_honoured(shipping, tenants)["failover.metadata.mode"]
    streaming = failover_section(read_scenario(REGIONAL, "standin").scenario)
    assert streaming is not None and streaming["metadata"] == {
        "mode": "async", "interval_seconds": None, "snapshots": False}


def test_the_newest_completed_snapshot_is_restored_and_older_dumps_pruned(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The schedule's bookkeeping with pg_dump/pg_restore stood in for: a failed dump is
    recorded and never restored, only the newest KEEP_FILES dumps stay on disk, and the
    RPO is the loss − the restored snapshot's start."""
    from sandbox.admin import snapshots
    from sandbox.errors import ApiError

    calls: list[list[str]] = []
    failing = {"now": False}

    async def run(cmd: list[str]) -> str | None:
        calls.append(cmd)
        if cmd[0] == "pg_dump":
            if failing["now"]:
                return "exit 1: connection refused"
            Path(cmd[-1]).write_bytes(b"dump")
        return None

    monkeypatch.setattr(snapshots, "_tool", lambda name: name)
    monkeypatch.setattr(snapshots, "_run", run)
    schedule = snapshots.SnapshotSchedule(tmp_path / "snaps")
    with pytest.raises(ApiError) as none:
        asyncio.run(snapshots.restore_newest(schedule, 5432, time.time()))
    assert none.value.status == 503
    for _ in range(snapshots.KEEP_FILES + 1):
        asyncio.run(schedule.take(5432, "scheduled"))
    good = schedule.taken[-1]
    failing["now"] = True
    asyncio.run(schedule.take(5432, "scheduled"))
    assert (schedule.count, schedule.failed) == (snapshots.KEEP_FILES + 1, 1)
    on_disk = sorted(p.name for p in (tmp_path / "snaps").iterdir())
    assert on_disk == sorted(r["file"] for r in schedule.completed()[-snapshots.KEEP_FILES:])
    lost_at = good["started_at"] + 42.0
    restored = asyncio.run(snapshots.restore_newest(schedule, 5433, lost_at))
    assert restored["snapshot"] == good["file"]
    assert restored["rpo_seconds"] == pytest.approx(42.0, abs=1e-5)
    assert calls[-1][0] == "pg_restore" and calls[-1][-1].endswith(good["file"])
    assert "5433" in calls[-1] and schedule.json()["restored"] == restored


def test_a_restarted_admin_resumes_the_applied_scenarios_schedule(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from sandbox.admin import snapshots
    from sandbox.standin import STANDIN_FILE

    async def run(cmd: list[str]) -> str | None:
        Path(cmd[-1]).write_bytes(b"dump")
        return None

    monkeypatch.setattr(snapshots, "_tool", lambda name: name)
    monkeypatch.setattr(snapshots, "_run", run)
    scenario = read_scenario(SNAPSHOT_RPO, "standin").scenario
    (tmp_path / STANDIN_FILE).write_text(json.dumps(config_from_scenario(scenario)))
    schedule = snapshots.SnapshotSchedule(tmp_path / "snaps")

    async def resume() -> dict[str, object]:
        await schedule.resume(tmp_path, lambda: 5432)
        await asyncio.sleep(0.05)  # the baseline is taken at once
        running = schedule.running
        await schedule.stop()
        return {**schedule.json(), "running": running}

    seen = asyncio.run(resume())
    assert seen["running"] and seen["interval_seconds"] == 900.0
    assert seen["phase_seconds"] == pytest.approx(snapshots.snapshot_phase(1, 900.0), abs=1e-6)
    assert [s["kind"] for s in schedule.taken] == ["baseline"]
    (tmp_path / STANDIN_FILE).write_text(json.dumps(default_config()))  # no failover
    asyncio.run(schedule.resume(tmp_path, lambda: 5432))
    assert schedule.json()["mode"] is None and not schedule.taken


def test_a_drawn_timeline_is_the_simulators_first_replications() -> None:
    """The stand-in draws detection, decision and spin-up from the simulator's own streams
    for the run seed (replication 0 runs with it): the same delays, not merely seeded ones."""
    from sim.kernel.streams import Streams

    scenario = read_scenario(SNAPSHOT_RPO, "standin").scenario  # lognormal delays
    section = failover_section(scenario)
    assert section is not None and scenario.failover is not None
    streams = Streams(scenario.run.seed)
    expected = {step: getattr(scenario.failover, step).sampler(
        streams.numpy(f"failover.{step}"))() for step in ("detection", "decision", "spinup")}
    assert draw_timeline(section) == pytest.approx(expected, rel=1e-12)
