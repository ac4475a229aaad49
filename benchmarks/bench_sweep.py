"""Sweep speed: hardware configurations evaluated per second, and a 10-million-point sweep
streamed to Parquet with its peak memory. Prints figures; asserts nothing.

Run: python benchmarks/bench_sweep.py [--points 10000000] [--workers 2]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time

import numpy as np

import roofline
from roofline._malloc import tune_malloc
from roofline.engine import Scenario, evaluate_configs
from roofline.sweep import run_sweep
from roofline.sweepfile import sweep_from_dict
from roofline.workload import Parallelism, Workload


def bench_engine(n: int = 16384, repeat: int = 20) -> float:
    scenario = Scenario(roofline.load_model("llama-3-70b"), Workload(batch=4, input_len=4096, output_len=512),
                        Parallelism(tp=8), roofline.load_hardware("h100-sxm"))
    rng = np.random.default_rng(0)
    params = dict(l2_capacity_MiB=rng.uniform(0, 256, n), hbm_bandwidth_GBps=rng.uniform(1000, 8000, n),
                  link_bandwidth_GBps=rng.uniform(10, 100, n))
    evaluate_configs(scenario, n, prefetch=True, **params)
    start = time.perf_counter()
    for _ in range(repeat):
        evaluate_configs(scenario, n, prefetch=True, **params)
    return n * repeat / (time.perf_counter() - start)


def bench_sweep(points: int, workers: int) -> None:
    side = round(points ** (1 / 3))
    spec = sweep_from_dict({
        "name": "bench", "hardware": "h100-sxm", "model": "llama-3-70b",
        "workload": {"batch": 4, "input_len": 4096, "output_len": 512}, "parallelism": {"tp": 8},
        "sweep": {"l2_capacity_MiB": {"low": 0, "high": 256, "num": side},
                  "hbm_bandwidth_GBps": {"low": 1000, "high": 8000, "num": side},
                  "link_bandwidth_GBps": {"low": 10, "high": 100, "num": side}},
    }, "bench")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = run_sweep(spec, f"{tmp}/out", workers=workers, csv=False)
        wall = time.perf_counter() - start
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"sweep of {result.rows:,} configurations streamed to Parquet with {workers} workers:")
    print(f"  wall time {wall:.1f} s (evaluation {result.seconds:.1f} s), "
          f"{result.rows / wall:,.0f} configs/s end to end")
    print(f"  peak memory: main process {own:,.0f} MiB, largest worker {child:,.0f} MiB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=10_000_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    bench_sweep(args.points, args.workers)  # first, so that its peak memory is its own
    default = bench_engine()
    tune_malloc()
    tuned = bench_engine()
    print("engine, one process, Llama-3-70B TP 8 on H100, prefill + decode (exact TPOT), prefetch on,")
    print("chunks of 16,384 configurations:")
    print(f"  {default:,.0f} configurations per second with glibc's default malloc thresholds")
    print(f"  {tuned:,.0f} configurations per second with the thresholds sweeps use (roofline._malloc)")
