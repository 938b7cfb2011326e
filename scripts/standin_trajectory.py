"""Print a stand-in's stats window by window under a scenario's standin load.

    python scripts/standin_trajectory.py --dir SB scenarios/cache_stampede.yaml --seconds 150

Resets the faults, configures the stand-in from the scenario's ``standin`` profile, empties
the result cache, runs the profile's load (``chaosomnisql.load.BackgroundLoad``) and prints
``/v1/stats`` over each 10 s: requests, error rate, P95, hit ratio, connector fetches,
provider calls and 429s, and each connector pool's (busy, waiting). Beside the simulator's
``window_table`` it shows where the two part (docs/conformance.md, cache_stampede's cold
start). Loopback only: the sandbox's own state file names the URLs.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import redis
from chaosomnisql.load import BackgroundLoad, plan_from_scenario

from labcore.sandbox_client import LOOPBACK_HOSTS, SandboxClient, apply_scenario
from sim import load_scenario

STEP = 10.0


def _line(elapsed: float, s: dict) -> str:
    c = s["connector"]
    pools = [(p["busy"], p["waiting"]) for p in s["pools"].values()]
    return (f"{elapsed:5.0f}s req {s['requests']:4d} err {s['error_rate'] or 0:.2f} "
            f"p95 {s['latency_p95'] or 0:.2f} hit {s['cache_hit_ratio'] or 0:.2f} "
            f"fetches {c['fetches']} calls {c['calls']} 429 {sum(c['rate_limited'].values())} "
            f"pools {pools}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("scenario")
    parser.add_argument("--dir", type=Path, required=True, help="the sandbox's directory")
    parser.add_argument("--seconds", type=float, default=150.0)
    args = parser.parse_args()
    state = json.loads((args.dir / "state.json").read_text())
    client = SandboxClient.from_state(state, LOOPBACK_HOSTS)
    client.call("POST", "/faults/reset")
    apply_scenario(client, args.scenario, "standin")
    redis.Redis(port=state["redis"]["port"],
                password=state["internal"]["redis_password"]).flushdb()
    scenario = load_scenario(args.scenario, "standin")
    keys = {t: v["api_key"] for t, v in state["tenants"].items()}
    load = BackgroundLoad(plan_from_scenario(scenario, args.seconds, 10**6),
                          state["gateway_url"], keys).start()
    started = time.monotonic()
    while time.monotonic() - started < args.seconds:
        time.sleep(STEP)
        print(_line(time.monotonic() - started, client.stats(int(STEP))), flush=True)
    print(load.stop().as_dict())


if __name__ == "__main__":
    main()
