"""Speed of the shared validation run of the tests (``tests/conftest.py`` ``_validation()``:
``run_validation`` of every case with the shipped profiles): its time, how many event
simulations it runs and how much of its time they take.

Run: ``python benchmarks/bench_validation.py`` (about two minutes of CPU; needs
``../shared/validation`` or ``ROOFLINE_VALIDATION_DATA``).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

import roofline.serving.simulator as simulator
from roofline.validation import load_cases, run_validation


def counting(simulate: Callable[..., Any], totals: dict[str, float]) -> Callable[..., Any]:
    """``simulate`` counting its calls, steps and CPU seconds into ``totals``."""
    def counted(*args: Any, **kwargs: Any) -> Any:
        cpu = time.process_time()
        trace = simulate(*args, **kwargs)
        totals["cpu_s"] += time.process_time() - cpu
        totals["simulations"] += 1
        totals["steps"] += trace.steps
        return trace

    return counted


def patch_simulate(totals: dict[str, float]) -> None:
    """Count every simulation: replace ``simulate`` in every roofline module that imported it."""
    original = simulator.simulate
    counted = counting(original, totals)
    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("roofline"):
            for name, value in list(vars(module).items()):
                if value is original:
                    setattr(module, name, counted)


def main() -> None:
    totals = {"simulations": 0, "steps": 0, "cpu_s": 0.0}
    cases = load_cases()
    patch_simulate(totals)
    wall, cpu = time.perf_counter(), time.process_time()
    result = run_validation(cases=cases)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    n = max(totals["simulations"], 1)
    print(f"validation run: {len(result.cases):,} cases in {cpu:.1f} CPU s ({wall:.1f} s wall; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    print(f"event simulations: {totals['simulations']:,} ({totals['steps']:,} engine steps), "
          f"{totals['cpu_s']:.1f} CPU s, {1e3 * totals['cpu_s'] / n:.1f} ms each")


if __name__ == "__main__":
    main()
