"""Report size and time for a sweep of about a million rows (two devices, L2 x HBM bandwidth x
link speed x prefetch) and for the README's quickstart. Prints figures; asserts nothing.

Run: python benchmarks/bench_report.py [--hbm-points 250] [--workers 2]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from roofline.report import write_report
from roofline.sweep import run_sweep
from roofline.sweepfile import load_sweep, sweep_from_dict

ROOT = Path(__file__).resolve().parent.parent


def _report(folder: Path, label: str) -> None:
    start = time.perf_counter()
    result = write_report(folder, force=True)
    seconds = time.perf_counter() - start
    c = result.counts
    print(f"{label}: {result.total_rows:,} rows -> report.html {result.size_bytes / 2**20:.1f} MiB in {seconds:.1f} s; "
          f"embedded {result.embedded_rows:,} (front {c['pareto_front']}, top {c['top']}, best per value "
          f"{c['best_per_value']}, sample {c['sample']} over {c['strata']} strata), {c['details']} breakdowns; "
          f"peak memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hbm-points", type=int, default=250, help="HBM bandwidth values (250: 1.03M rows)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_sweep(load_sweep(ROOT / "sweeps" / "quickstart.yaml"), Path(tmp) / "qs", workers=args.workers)
        _report(Path(tmp) / "qs", "quickstart")
        spec = sweep_from_dict({
            "name": "report-1m", "hardware": ["h100-sxm", "h200-sxm"], "model": "llama-3-70b",
            "workload": {"batch": 8, "input_len": 2048, "output_len": 512, "dtype": "fp8"}, "parallelism": {"tp": 8},
            "sweep": {"l2_capacity_MiB": {"low": 0, "high": 256, "num": 257},
                      "hbm_bandwidth_GBps": {"low": 2000, "high": 6000, "num": args.hbm_points},
                      "link_bandwidth_GBps": [12.5, 25, 50, 100], "prefetch": [False, True]},
            "constraints": {"memory_fit": True, "max_tpot_ms": 50},
        }, "bench_report")
        start = time.perf_counter()
        result = run_sweep(spec, Path(tmp) / "big", workers=args.workers, csv=False)
        print(f"sweep: {result.rows:,} rows in {time.perf_counter() - start:.1f} s")
        _report(Path(tmp) / "big", "large sweep")


if __name__ == "__main__":
    main()
