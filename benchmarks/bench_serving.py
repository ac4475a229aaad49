"""Speed of the serving stage: the event simulator (1,000 requests of 1k/1k at concurrency 64;
a KV-limited case, reserving and allocating on demand) and the analytic steady-state model (configurations per second in one process), staggered and in
lock-step (a closed loop of identical lengths, :mod:`roofline.serving.lockstep`), and in open loop.

Run: ``python benchmarks/bench_serving.py``.
"""

from __future__ import annotations

import os
import time

import numpy as np

import roofline
from roofline.serving import (
    Lengths,
    ServingSetup,
    ServingWorkload,
    engine_defaults,
    make_requests,
    simulate,
    steady_state,
)


def main() -> None:
    setup = ServingSetup(roofline.load_model("llama-3.1-70b"), roofline.load_hardware("h200-sxm"),
                         roofline.Workload.with_dtype("fp8"), roofline.Parallelism(tp=8), engine_defaults("vllm"))
    t0 = time.perf_counter()
    cost, cap = setup.step_cost(), setup.kv_capacity_tokens()
    t1 = time.perf_counter()
    print(f"step-cost precompute (one scenario): {t1 - t0:.3f} s, {len(cost.tokens)} grid points")
    req = make_requests(ServingWorkload(Lengths(1024), Lengths(1024), concurrency=64, num_requests=1000))
    scalar = cost.scalar()
    t2 = time.perf_counter()
    tr = simulate(req, scalar, setup.settings, cap, concurrency=64)
    t3 = time.perf_counter()
    print(f"simulator, 1,000 requests 1k/1k at concurrency 64: {t3 - t2:.3f} s ({tr.steps} steps)")
    req = make_requests(ServingWorkload(Lengths(900, 1100), Lengths(900, 1100), concurrency=64, num_requests=1000))
    t2 = time.perf_counter()
    simulate(req, scalar, setup.settings, cap, concurrency=64)
    print(f"simulator, same with lengths uniform in 900-1100: {time.perf_counter() - t2:.3f} s")
    # where the KV cache is the limit: Llama-3.1-70B fp8 (KV cache bf16) on one B200 holds ~307k
    # tokens, 33 requests of 1k + 8k; vLLM allocates on demand and preempts (AIConfigurator's row)
    kv_limited = ServingSetup(roofline.load_model("llama-3.1-70b"), roofline.load_hardware("b200"),
                              roofline.Workload.with_dtype("fp8", kv_dtype="bf16"), roofline.Parallelism(tp=1),
                              engine_defaults("vllm"))
    req = make_requests(ServingWorkload(Lengths(1024), Lengths(8192), concurrency=64, num_requests=640))
    scalar_kv, cap_kv = kv_limited.step_cost().scalar(), kv_limited.kv_capacity_tokens()
    for policy in ("reserve", "on_demand", "sglang_ratio"):  # sglang_ratio: SGLang's rule on vLLM's engine
        t2 = time.perf_counter()
        tr = simulate(req, scalar_kv, kv_limited.settings.with_overrides(kv_admission=policy), cap_kv, concurrency=64)
        print(f"simulator, KV-limited (70B on a B200, 640 requests 1k/8k at concurrency 64), {policy}: "
              f"{time.perf_counter() - t2:.3f} s ({tr.steps} steps, {tr.preemptions} preemptions)")
    n = 1_000_000
    rng = np.random.default_rng(0)
    c = rng.integers(1, 1024, n).astype(float)
    isl = rng.integers(128, 8192, n).astype(float)
    osl = rng.integers(64, 4096, n).astype(float)
    for label, lockstep in (("analytic model (staggered)", False), ("analytic model (lock-step)", True)):
        best, best_cpu = np.inf, np.inf
        for _ in range(3):
            t4, cpu = time.perf_counter(), time.process_time()
            steady_state(cost, prompt=isl, output=osl, prefill=isl, kv_capacity_tokens=cap,
                         max_num_batched_tokens=8192, max_num_seqs=1024, block_tokens=16, concurrency=c,
                         request_overhead_s=0.04, lockstep=lockstep)
            best, best_cpu = min(best, time.perf_counter() - t4), min(best_cpu, time.process_time() - cpu)
        # CPU seconds of this process: the other jobs of a shared machine do not count (wall beside it)
        print(f"{label}: {n / best_cpu:,.0f} configurations per CPU second, {n / best:,.0f} per wall second "
              f"({n:,} at once, best of 3; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    # open loop (Poisson rates, many past the sustainable rate; the on-demand KV limit where the running set
    # at the knee cannot hold its whole requests)
    rate = rng.uniform(0.05, 20.0, n)
    best, best_cpu = np.inf, np.inf
    for _ in range(3):
        t4, cpu = time.perf_counter(), time.process_time()
        steady_state(cost, prompt=isl, output=osl, prefill=isl, kv_capacity_tokens=cap, max_num_batched_tokens=8192,
                     max_num_seqs=1024, block_tokens=16, rate_rps=rate, request_overhead_s=0.04)
        best, best_cpu = min(best, time.perf_counter() - t4), min(best_cpu, time.process_time() - cpu)
    print(f"analytic model (open loop): {n / best_cpu:,.0f} configurations per CPU second, {n / best:,.0f} per wall "
          f"second ({n:,} at once, best of 3; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
