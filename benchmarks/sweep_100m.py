"""A 100-million-point sweep written as a partitioned Parquet dataset (issue #21's target: under
3 minutes and 1 GB of peak memory on the 2-core machine). Prints the wall time, the rate, the peak
memory of the main process and of the largest worker, the size on disk, and where the time of one
chunk goes (evaluation, Arrow table, Parquet write), which says what limits the rate. Asserts
nothing.

The grid is Llama-3-70B TP 8 on H100 (batch 4, 4096 in, 512 out, prefetch on), L2 size x HBM
bandwidth x link bandwidth. ``--points`` runs a smaller grid of the same shape and extrapolates the
time to 100M at the measured rate (the dataset of 100M rows takes about 12 GB of disk).

Run: python benchmarks/sweep_100m.py [--points 100000000] [--workers 2] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from roofline._dataset import arrow_table, parquet_options
from roofline.sweep import evaluate_rows, run_sweep, scenario_for
from roofline.sweepfile import sweep_from_dict

TARGET_POINTS = 100_000_000
CHUNK = 16384


def grid_spec(points: int):
    side = max(2, round(points ** (1 / 3)))
    return sweep_from_dict({
        "name": "sweep-100m", "hardware": "h100-sxm", "model": "llama-3-70b",
        "workload": {"batch": 4, "input_len": 4096, "output_len": 512}, "parallelism": {"tp": 8},
        "scenario": {"prefetch": {"enabled": True}},
        "sweep": {"l2_capacity_MiB": {"low": 0, "high": 256, "num": side},
                  "hbm_bandwidth_GBps": {"low": 1000, "high": 8000, "num": side},
                  "link_bandwidth_GBps": {"low": 10, "high": 100, "num": side}},
    }, "sweep-100m")


def chunk_breakdown(spec, repeats: int = 3) -> dict[str, float]:
    """CPU seconds per row of each step of one chunk, in this process (best of ``repeats``): the
    chunk in the middle of the grid (the first holds only L2 = 0, where the exact TPOT mean splits
    the decode run ten times as often as elsewhere), its scenario built once as a worker does."""
    import io

    import pyarrow.parquet as pq

    combo = next(spec.structural_combinations())
    scenario = scenario_for(combo, spec.prefetch)
    grid = spec.hardware_grid()
    shape = tuple(len(v) for v in grid.values())
    middle = int(np.prod(shape)) // 2
    idx = np.unravel_index(np.arange(middle, middle + CHUNK), shape)
    params = {n: grid[n][i] for n, i in zip(grid, idx)}
    evaluate_rows(spec, combo, params, scenario=scenario)  # warm caches
    steps = {"evaluate": float("inf"), "arrow table": float("inf"), "parquet write": float("inf")}
    for _ in range(repeats):
        t0 = time.process_time()
        columns = evaluate_rows(spec, combo, params, scenario=scenario)
        t1 = time.process_time()
        table = arrow_table(columns)
        t2 = time.process_time()
        pq.write_table(table, io.BytesIO(), **parquet_options(table.schema))
        t3 = time.process_time()
        for step, seconds in zip(steps, (t1 - t0, t2 - t1, t3 - t2)):
            steps[step] = min(steps[step], seconds / CHUNK)
    return steps


def _disk_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=TARGET_POINTS)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=None, help="keep the dataset here (default: a temporary folder)")
    args = parser.parse_args()
    spec = grid_spec(args.points)
    temporary = args.out is None
    out = Path(tempfile.mkdtemp(prefix="sweep-100m-")) / "out" if temporary else args.out
    # a kill (SIGTERM) unwinds through the finally below, so the 13 GB temporary dataset goes too
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        start = time.perf_counter()
        result = run_sweep(spec, out, workers=args.workers, chunk_size=CHUNK, output="parquet-dataset", force=True)
        wall = time.perf_counter() - start
        disk = _disk_bytes(out / "results")
    finally:
        if temporary:
            shutil.rmtree(out.parent, ignore_errors=True)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    rate = result.rows / wall
    print(f"sweep of {result.rows:,} configurations to a Parquet dataset ({disk / 1e9:,.2f} GB, "
          f"{disk / result.rows:,.0f} bytes per row) with {args.workers} workers:")
    print(f"  wall time {wall:,.1f} s: {rate:,.0f} configurations per second end to end "
          f"(evaluation and parts {result.seconds:,.1f} s, summary {wall - result.seconds:,.1f} s)")
    if result.rows < TARGET_POINTS:
        print(f"  at this rate 100M configurations take {TARGET_POINTS / rate / 60:,.1f} min (target: 3 min)")
    print(f"  peak memory: main process {own:,.0f} MiB, largest worker {child:,.0f} MiB "
          f"(at most {own + args.workers * child:,.0f} MiB together; target: < 1 GB)")
    steps = chunk_breakdown(spec)
    per_row = sum(steps.values())
    print(f"one chunk of {CHUNK:,} rows in one process, CPU time per row ({1 / per_row:,.0f} rows per CPU second):")
    for step, seconds in steps.items():
        print(f"  {step:<14} {seconds * 1e6:8.2f} us  {seconds / per_row:6.1%}")


if __name__ == "__main__":
    main()
