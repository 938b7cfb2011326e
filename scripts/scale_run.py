"""Run one of ``python -m sim bench``'s scale points for its whole length, in segments.

The bench runs the 50,000 req/s point for 2 simulated minutes; this runs any size for as
long as asked (one simulated hour, for issue 15's bar) and prints, per segment, the CPU
seconds it took, the events queued and the peak resident memory so far::

    python scripts/scale_run.py 50000 500 1h            # 5-minute segments
    python scripts/scale_run.py 1000 4 10m --segment 1m

The model is the bench's (``sim.scale.run_segments``: the baseline grown to the rate and
the tenants, built as ``sim.run.simulate`` builds it); the compiled path where it is
built (``SIM_PURE=1`` forces the pure one).
"""

from __future__ import annotations

import argparse

from labcore.units import parse_duration
from sim import path_status
from sim.scale import ScalePoint, peak_mb, run_segments


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("rate", type=float, help="requests a second, all tenants")
    parser.add_argument("tenants", type=int)
    parser.add_argument("duration", help="simulated, e.g. 1h or 90s")
    parser.add_argument("--segment", default="5m", help="report every (simulated)")
    args = parser.parse_args(argv)
    until = parse_duration(args.duration)
    print(f"{args.rate:g} req/s, {args.tenants} tenants, {args.duration}; "
          f"compiled: {path_status().compiled}", flush=True)
    total = 0.0
    point = ScalePoint("scale_run", args.rate, args.tenants, args.duration)
    for t, seconds, queued in run_segments(point, parse_duration(args.segment)):
        total += seconds
        print(f"t={t:8.0f} s  segment {seconds:7.2f} CPU-s  queued {queued:6d}  "
              f"peak {peak_mb():6.0f} MB", flush=True)
    print(f"total {total:.1f} CPU-s for {until:g} simulated s "
          f"({total / until * 60:.1f} CPU-min a simulated hour), peak {peak_mb():.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
