"""Static engine speed against a scalar peer, measured in the same run. Prints figures; asserts nothing.

Ours: Llama-3-70B TP 8 on H100, prefill + decode with the exact TPOT mean, prefetch on, every
metric column (cost, power, TCO), configurations per second in one process, with the compiled
kernel (``roofline/static_kernel.py``) and with the numpy reference path. The peer: llm-analysis
(PyPI ``llm-analysis``), one ``infer`` call of its bundled ``upstage_Llama-2-70b-instruct-v2``
config on ``h100-sxm-80gb`` at TP 8, batch 4, 4096 prompt and 512 generated tokens. It is no
project dependency: it runs in its own venv beside this script::

    python3 -m venv benchmarks/.venv-peers && benchmarks/.venv-peers/bin/pip install llm-analysis
    .venv/bin/python benchmarks/bench_static.py

Rates are CPU seconds of this process (``time.process_time``), so that the other jobs of a shared
machine do not count; the wall-clock rate and the load average are printed beside them.

Run: python benchmarks/bench_static.py [--chunks 12]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from pathlib import Path

import numpy as np

import roofline
import roofline.engine as engine
from roofline._malloc import prepare_worker
from roofline.static_kernel import static_phases
from roofline.workload import Parallelism, Workload

CHUNK = 16384
PEER_PYTHON = Path(__file__).resolve().parent / ".venv-peers" / "bin" / "python"
PEER_CALLS = 300
ROUNDS = 3  # both sides: the best of 3 timed rounds

# llm-analysis in its own interpreter: time PEER_CALLS calls of infer (best of 3 rounds)
PEER_SCRIPT = f"""
import logging, time
logging.disable(logging.CRITICAL)
from llm_analysis.analysis import infer
kwargs = dict(model_name="upstage_Llama-2-70b-instruct-v2", gpu_name="h100-sxm-80gb", dtype_name="w16a16e16",
              tp_size=8, batch_size_per_gpu=4, seq_len=4096, num_tokens_to_generate=512, log_level="CRITICAL")
infer(**kwargs)
best = 1e9
for _ in range(3):
    start = time.process_time()
    for _ in range({PEER_CALLS}):
        infer(**kwargs)
    best = min(best, (time.process_time() - start) / {PEER_CALLS})
print(best)
"""


def _scenario() -> engine.Scenario:
    return engine.Scenario(roofline.load_model("llama-3-70b"), Workload(batch=4, input_len=4096, output_len=512),
                           Parallelism(tp=8), roofline.load_hardware("h100-sxm"))


def _params(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return dict(l2_capacity_MiB=rng.uniform(0, 256, CHUNK), hbm_bandwidth_GBps=rng.uniform(1000, 8000, CHUNK),
                link_bandwidth_GBps=rng.uniform(10, 100, CHUNK))


def _numpy_phases(*args: object, **kwargs: object) -> object:
    """The engine's static phases on the numpy reference path, whatever it asked for."""
    return static_phases(*args, **{**kwargs, "compiled": False})


def engine_rate(chunks: int, compiled: bool) -> tuple[float, float]:
    """(CPU, wall) configurations per second of ``evaluate_configs`` in this process, the best of
    ``ROUNDS`` rounds over the same chunks (the peer's time per call is the best of as many rounds)."""
    engine.static_phases = static_phases if compiled else _numpy_phases
    scenario = _scenario()
    params = [_params(seed) for seed in range(chunks)]
    engine.evaluate_configs(scenario, CHUNK, prefetch=True, **params[0])  # compile or load the kernel
    best_cpu = best_wall = float("inf")
    for _ in range(ROUNDS):  # best of ROUNDS, as the peer is timed
        cpu, wall = time.process_time(), time.perf_counter()
        for p in params:
            engine.evaluate_configs(scenario, CHUNK, prefetch=True, **p)
        best_cpu = min(best_cpu, time.process_time() - cpu)
        best_wall = min(best_wall, time.perf_counter() - wall)
    done = chunks * CHUNK
    engine.static_phases = static_phases
    return done / best_cpu, done / best_wall


def peer_seconds_per_call() -> float | None:
    if not PEER_PYTHON.exists():
        return None
    out = subprocess.run([str(PEER_PYTHON), "-c", PEER_SCRIPT], capture_output=True, text=True,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"}, check=False)
    if out.returncode:
        print(f"  llm-analysis failed: {out.stderr.strip().splitlines()[-1:]}")
        return None
    return float(out.stdout.strip().splitlines()[-1])


def main(chunks: int) -> None:
    prepare_worker()  # one BLAS thread, large temporaries kept in the heap (as a sweep worker)
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    fast_cpu, fast_wall = engine_rate(chunks, compiled=True)
    ref_cpu, ref_wall = engine_rate(max(chunks // 4, 2), compiled=False)
    print("static engine, Llama-3-70B TP 8 on H100, prefill + decode (exact TPOT), prefetch on, every column:")
    print(f"  compiled kernel:   {fast_cpu:>12,.0f} configurations per CPU second ({fast_wall:,.0f} per wall second)")
    print(f"  numpy reference:   {ref_cpu:>12,.0f} configurations per CPU second ({ref_wall:,.0f} per wall second)")
    peer = peer_seconds_per_call()
    if peer is None:
        print(f"llm-analysis: not installed in {PEER_PYTHON.parent.parent} (see this script's docstring)")
    else:
        print(f"llm-analysis infer, Llama-2-70B TP 8, one call: {peer * 1e3:.3f} ms CPU")
        print(f"  speed ratio (target >= 200x): compiled {fast_cpu * peer:,.0f}x, numpy {ref_cpu * peer:,.0f}x")
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=12)
    main(parser.parse_args().chunks)
