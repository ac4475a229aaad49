"""Speed of one in-process prediction and of the CLI start. Prints figures; asserts nothing.

Run: python benchmarks/bench_predict.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

import roofline


def _best_of(func, repeat: int = 7, number: int = 200) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            func()
        times.append((time.perf_counter() - start) / number)
    return min(times)


def bench_predict() -> None:
    model, hw = roofline.load_model("llama-3-70b"), roofline.load_hardware("h100-sxm")
    kwargs = dict(tp=8, batch=4, input_len=4096, output_len=512, prefetch=True)  # off by default
    roofline.predict(model, hw, **kwargs)
    warm = _best_of(lambda: roofline.predict(model, hw, **kwargs))
    counter = iter(range(10**9))
    cold = _best_of(lambda: roofline.predict(model, hw, tp=8, batch=4, input_len=4096 + next(counter),
                                             output_len=512, prefetch=True))
    by_name = _best_of(lambda: roofline.predict("llama-3-70b", "h100-sxm", **kwargs), number=20)
    print("one prediction, Llama-3-70B on 8x H100, both phases, prefetch on (target < 0.5 ms):")
    print(f"  specs loaded, operator tables cached   {warm * 1e3:8.3f} ms")
    print(f"  specs loaded, new workload each call   {cold * 1e3:8.3f} ms")
    print(f"  specs parsed from YAML each call       {by_name * 1e3:8.3f} ms")


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
    print("CLI wall time, median of 5 (targets: --help < 0.3 s, predict < 0.5 s):")
    print(f"  python -c pass (interpreter floor)     {python_s:8.3f} s")
    print(f"  roofline --help                        {help_s:8.3f} s")
    print(f"  roofline predict ... --json            {predict_s:8.3f} s")


if __name__ == "__main__":
    bench_predict()
    bench_cli()
