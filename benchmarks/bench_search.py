"""Search quality and overhead of `roofline optimize` (roofline.search). Prints figures; asserts nothing.

Quality: on a discrete space (L2 size, HBM bandwidth, link bandwidth on 8x Ascend 910B, Llama-3-70B
int8, batch 4, 10923 in / 5461 out, prefetch on; the space of sweeps/preserve_search.yaml on a grid),
the exhaustive grid sweep gives the optimum of tok_s_per_kusd; the search gets ``--trials`` trials
(default 200) and its best is compared with the grid's, median over ``--seeds`` seeds (target:
within 1%). Searches run on an in-memory study, so the number measures the sampler.

Overhead: wall time per trial of the same search minus the time in the vectorized engine, with
an in-memory study and with the default SQLite study (what `roofline optimize` uses).

Run: python benchmarks/bench_search.py [--trials 200] [--seeds 5] [--batch-size 16] [--sampler tpe]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from roofline.search import run_search, search_options
from roofline.sweep import run_sweep
from roofline.sweepfile import sweep_from_dict

SPACE = {
    "name": "bench-search", "hardware": "ascend-910b", "model": "llama-3-70b",
    "workload": {"batch": 4, "input_len": 10923, "output_len": 5461, "dtype": "int8"},
    "parallelism": {"tp": 8},
    "sweep": {"l2_capacity_MiB": {"low": 0, "high": 256, "step": 8},
              "hbm_bandwidth_GBps": {"low": 800, "high": 3200, "step": 100},
              "link_bandwidth_GBps": {"low": 10, "high": 100, "step": 5},
              "prefetch": [True]},
    "constraints": {"memory_fit": True},
    "objective": {"maximize": "tok_s_per_kusd"},
}


def grid_optimum(spec) -> tuple[float, dict, int, float]:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = run_sweep(spec, f"{tmp}/grid", workers=1, csv=False, top=1)
        seconds = time.perf_counter() - start
    best = result.best[0]
    return best["tok_s_per_kusd"], best, result.rows, seconds


def search_best(spec, trials: int, seed: int, batch: int, sampler: str, storage: str | None):
    options = search_options(spec, trials=trials, seed=seed, batch_size=batch, sampler=sampler)
    with tempfile.TemporaryDirectory() as tmp:
        if storage == "memory":
            result = run_search(spec, None, options=options, storage="memory")
        else:
            result = run_search(spec, f"{tmp}/search", options=options)
    stats = result.workers[0]
    overhead_ms = (stats.seconds - stats.evaluate_seconds) / max(stats.told, 1) * 1e3
    return result.best["tok_s_per_kusd"], result.best, overhead_ms, stats


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--sampler", default="tpe")
    args = parser.parse_args()
    spec = sweep_from_dict(SPACE, "bench_search")
    optimum, best_row, rows, grid_s = grid_optimum(spec)
    print(f"grid: {rows:,} configurations in {grid_s:.1f} s; optimum {optimum:.4f} tok/s per kUSD at "
          f"L2 {best_row['l2_capacity_MiB']:g} MiB, HBM {best_row['hbm_bandwidth_GBps']:g} GB/s, "
          f"link {best_row['link_bandwidth_GBps']:g} GB/s")
    ratios = []
    for seed in range(args.seeds):
        value, best, overhead, _ = search_best(spec, args.trials, seed, args.batch_size, args.sampler, "memory")
        ratios.append(value / optimum)
        print(f"  seed {seed}: best {value:.4f} ({value / optimum:.2%} of the grid optimum) at L2 "
              f"{best['l2_capacity_MiB']:g} MiB, HBM {best['hbm_bandwidth_GBps']:g} GB/s, "
              f"link {best['link_bandwidth_GBps']:g} GB/s; overhead {overhead:.2f} ms/trial in memory")
    median = statistics.median(ratios)
    print(f"search quality ({args.sampler}, {args.trials} trials, batch {args.batch_size}, {args.seeds} seeds): "
          f"median best = {median:.2%} of the grid optimum (gap {1 - median:.2%}; target <= 1%: "
          f"{'met' if median >= 0.99 else 'NOT met'}); worst seed {min(ratios):.2%}; "
          f"grid evaluated {rows / args.trials:.0f}x more configurations")
    for storage in ("memory", "sqlite"):
        _, _, overhead, stats = search_best(spec, args.trials, 0, args.batch_size, args.sampler, storage)
        per = 1e3 / max(stats.told, 1)
        print(f"overhead per trial, {storage} study: {overhead:.1f} ms (ask {stats.ask_seconds * per:.1f}, "
              f"tell {stats.tell_seconds * per:.1f}, engine {stats.evaluate_seconds * per:.2f} ms/trial "
              f"in {stats.batches} batches)")


if __name__ == "__main__":
    main()
