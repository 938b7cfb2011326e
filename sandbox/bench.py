"""The cache-hit benchmark: how many queries a second the gateway sustains, and how fast.

It warms one query per tenant, then keeps `concurrency` async clients busy on those cached
queries for `seconds`. Not a timed test: it prints figures to compare with the 300 req/s bar.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp

from sandbox.launch import running_pid, start, stop
from sandbox.state import load_state

__all__ = ["drive", "run_bench"]

BENCH_SQL = "SELECT id, name, industry FROM crm.accounts WHERE id = 42"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def _worker(http: aiohttp.ClientSession, url: str, headers: dict[str, str], until: float,
                  latencies: list[float], errors: list[int]) -> None:
    while time.perf_counter() < until:
        t0 = time.perf_counter()
        try:
            async with http.post(url, json={"sql": BENCH_SQL}, headers=headers) as resp:
                ok = resp.status == 200 and (await resp.json())["cache"] == "hit"
        except (aiohttp.ClientError, ValueError, KeyError):
            ok = False
        latencies.append(time.perf_counter() - t0)
        if not ok:
            errors.append(1)


async def drive(state: dict[str, Any], seconds: float, concurrency: int) -> dict[str, Any]:
    url = f"{state['gateway_url']}/v1/query"
    tenants = list(state["tenants"].items())
    # aiohttp, not httpx: the client must not be the bottleneck (httpx used a whole core).
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency),
        timeout=aiohttp.ClientTimeout(total=10.0), raise_for_status=False,
    ) as http:
        heads = [{"Authorization": f"Bearer {v['api_key']}", "X-OmniSQL-User": v["users"][0]}
                 for _, v in tenants]
        for h in heads:  # warm: one miss per tenant fills the cache
            async with http.post(url, json={"sql": BENCH_SQL}, headers=h) as resp:
                resp.raise_for_status()
        latencies: list[float] = []
        errors: list[int] = []
        started = time.perf_counter()
        until = started + seconds
        await asyncio.gather(*(_worker(http, url, heads[i % len(heads)], until, latencies, errors)
                               for i in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {"requests": len(latencies), "errors": len(errors), "seconds": round(elapsed, 2),
            "rps": round(len(latencies) / elapsed, 1),
            "p50_ms": round(_percentile(latencies, 0.50) * 1000, 2),
            "p95_ms": round(_percentile(latencies, 0.95) * 1000, 2),
            "p99_ms": round(_percentile(latencies, 0.99) * 1000, 2), "concurrency": concurrency}


def run_bench(root: Path, seconds: float, concurrency: int) -> int:
    owned = running_pid(root) is None
    state = start(root) if owned else load_state(root)
    try:
        result = asyncio.run(drive(state, seconds, concurrency))
    finally:
        if owned:
            stop(root)
    print(f"cache-hit path: {result['rps']} req/s over {result['seconds']} s, "
          f"{result['requests']} requests, {result['errors']} errors, "
          f"p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms, p99 {result['p99_ms']} ms "
          f"(concurrency {concurrency})")
    bar = result["rps"] >= 300 and result["errors"] == 0
    print("bar (>= 300 req/s, 0 errors): " + ("met" if bar else "NOT met"))
    return 0 if bar else 1
