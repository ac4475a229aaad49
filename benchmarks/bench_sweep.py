"""Sweep speed: hardware configurations evaluated per second (one process and all cores), and a
10-million-point sweep streamed to Parquet with its peak memory. Prints figures; asserts nothing.

Run: python benchmarks/bench_sweep.py [--points 10000000] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

import roofline
from roofline._malloc import prepare_worker, tune_malloc
from roofline.engine import Scenario, evaluate_configs
from roofline.sweep import run_sweep
from roofline.sweepfile import sweep_from_dict
from roofline.workload import Parallelism, Workload

CHUNK = 16384


def _scenario() -> Scenario:
    return Scenario(roofline.load_model("llama-3-70b"), Workload(batch=4, input_len=4096, output_len=512),
                    Parallelism(tp=8), roofline.load_hardware("h100-sxm"))


def _params(seed: int, n: int = CHUNK) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return dict(l2_capacity_MiB=rng.uniform(0, 256, n), hbm_bandwidth_GBps=rng.uniform(1000, 8000, n),
                link_bandwidth_GBps=rng.uniform(10, 100, n))


def _evaluate_chunks(first: int, count: int) -> int:
    tune_malloc()
    scenario = _scenario()
    for seed in range(first, first + count):
        evaluate_configs(scenario, CHUNK, prefetch=True, **_params(seed))
    return count * CHUNK


def engine_rate(processes: int, chunks_each: int = 20) -> float:
    _evaluate_chunks(0, 1)  # warm the caches of this process
    start = time.perf_counter()
    if processes == 1:
        done = _evaluate_chunks(0, chunks_each)
    else:
        with ProcessPoolExecutor(processes, initializer=prepare_worker) as pool:
            done = sum(pool.map(_evaluate_chunks, [i * chunks_each for i in range(processes)],
                                [chunks_each] * processes))
    return done / (time.perf_counter() - start)


def tiered_rate(chunks: int = 10) -> float:
    """One process: Llama-3-8B on GH200 with its KV cache spilled into the Grace LPDDR tier, the LPDDR
    bandwidth and capacity swept with the HBM bandwidth (the memory-tier path of the engine)."""
    tune_malloc()
    scenario = Scenario(roofline.load_model("llama-3-8b"), Workload(batch=32, input_len=32000, output_len=256),
                        Parallelism(), roofline.load_hardware("gh200"))

    def params(seed: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        return dict(hbm_bandwidth_GBps=rng.uniform(1000, 8000, CHUNK), lpddr_bandwidth_GBps=rng.uniform(100, 900, CHUNK),
                    lpddr_capacity_GiB=rng.uniform(50, 480, CHUNK))

    evaluate_configs(scenario, CHUNK, prefetch=True, **params(0))
    start = time.perf_counter()
    for seed in range(chunks):
        evaluate_configs(scenario, CHUNK, prefetch=True, **params(seed))
    return chunks * CHUNK / (time.perf_counter() - start)


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
        size = os.path.getsize(f"{tmp}/out/results.parquet") / 2**20
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"sweep of {result.rows:,} configurations streamed to Parquet ({size:,.0f} MiB) with {workers} workers:")
    print(f"  wall time {wall:.1f} s: {result.rows / wall:,.0f} configurations per second end to end "
          f"(evaluation and Parquet parts {result.seconds:.1f} s, merge {wall - result.seconds:.1f} s)")
    print(f"  peak memory: main process {own:,.0f} MiB, largest worker {child:,.0f} MiB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=10_000_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    bench_sweep(args.points, args.workers)  # first, so that its peak memory is its own
    print("engine: Llama-3-70B TP 8 on H100, prefill + decode (exact TPOT), prefetch on, chunks of "
          f"{CHUNK:,} configurations (target: 500,000 per second on 2 cores):")
    print(f"  one process:        {engine_rate(1):>12,.0f} configurations per second")
    cores = os.cpu_count() or 1
    print(f"  {cores} processes:        {engine_rate(cores):>12,.0f} configurations per second")
    print("engine with a memory tier: Llama-3-8B on GH200, KV cache spilled into LPDDR, HBM and LPDDR swept:")
    print(f"  one process:        {tiered_rate():>12,.0f} configurations per second")
