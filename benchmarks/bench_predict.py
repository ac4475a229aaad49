"""Speed of one in-process prediction and of the CLI start. Prints figures; asserts nothing.

In-process figures are CPU time per call (``time.process_time``, best of 7 repeats), on both
paths of the static phases: the numpy reference (a process's first KERNEL_MIN_CONFIGS
predictions, and every ``roofline predict``) and the compiled kernel (from then on, when numba's
disk cache holds it). The load average is printed beside them: the machine may be shared.

Run: python benchmarks/bench_predict.py
"""

from __future__ import annotations

import functools
import os
import statistics
import subprocess
import sys
import time

import roofline
from roofline.static_kernel import KERNEL_MIN_CONFIGS


def _best_of(func, repeat: int = 7, number: int = 200) -> float:
    times = []
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(number):
            func()
        times.append((time.process_time() - start) / number)
    return min(times)


def _load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def bench_predict() -> None:
    model, hw = roofline.load_model("llama-3-70b"), roofline.load_hardware("h100-sxm")
    kwargs = dict(tp=8, batch=4, input_len=4096, output_len=512, prefetch=True)  # off by default
    print(f"one prediction, Llama-3-70B on 8x H100, both phases, prefetch on (target <= 0.2 ms), {_load()}:")
    print(f"  {'CPU ms per call':38s} {'numpy':>8s} {'kernel':>8s}")
    for compiled in (False, True):
        roofline.predict(model, hw, **kwargs, compiled=compiled)  # the kernel loads (or compiles) here
    counter = iter(range(10**9))
    calls = (
        ("specs loaded, operator tables cached", 200, lambda c: roofline.predict(model, hw, **kwargs, compiled=c)),
        ("specs loaded, new workload each call", 200, lambda c: roofline.predict(
            model, hw, tp=8, batch=4, input_len=4096 + next(counter), output_len=512, prefetch=True, compiled=c)),
        ("specs parsed from YAML each call", 20, lambda c: roofline.predict(
            "llama-3-70b", "h100-sxm", **kwargs, compiled=c)))
    for label, number, call in calls:
        numpy_s, kernel_s = (_best_of(functools.partial(call, c), number=number) for c in (False, True))
        print(f"  {label:38s} {numpy_s * 1e3:8.3f} {kernel_s * 1e3:8.3f}")
    print(f"  ({_load()}; the default takes the kernel once the process has loaded it, or from its "
          f"{KERNEL_MIN_CONFIGS}th prediction on when numba's disk cache holds it)")


def _wall(args: list[str], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_cli() -> None:
    exe = [sys.executable, "-m", "roofline.cli.main"]
    help_s = _wall(exe + ["--help"])
    predict_s = _wall(exe + ["predict", "-m", "llama-3-70b", "-H", "h100-sxm", "--tp", "8", "--json"])
    python_s = _wall([sys.executable, "-c", "pass"])
    print(f"CLI wall time, median of 5 (targets: --help <= 0.3 s, predict < 0.5 s), {_load()}:")
    print(f"  python -c pass (interpreter floor)     {python_s:8.3f} s")
    print(f"  roofline --help                        {help_s:8.3f} s")
    print(f"  roofline predict ... --json            {predict_s:8.3f} s")


if __name__ == "__main__":
    bench_predict()
    bench_cli()
