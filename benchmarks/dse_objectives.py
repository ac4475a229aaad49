"""The design-space answer of docs/dse_l2.md, timed: optima of L2 size, HBM bandwidth and link speed
under perf per manufacturing cost, per price and per TCO dollar (prefetch on) at a static batch and
at the serving operating point, for the PRESERVE set-up and two GPU nodes, and the tornado charts.
The same as ``roofline reproduce dse-objectives``.

    .venv/bin/python benchmarks/dse_objectives.py [OUT_DIR]   # default runs/dse_objectives

Writes optima.csv, tornado.csv, report.md and plots/tornado_<setup>_<point>.html/.png into OUT_DIR
and prints the report and the wall time.
"""

from __future__ import annotations

import sys
import time

from roofline.reproduce import reproduce_dse_objectives


def main() -> None:
    from _args import out_dir

    out = out_dir(sys.argv[1:], __doc__, default="runs/dse_objectives")
    start = time.perf_counter()
    rep = reproduce_dse_objectives(out, force=True, progress=print)
    seconds = time.perf_counter() - start
    print((out / "report.md").read_text())
    print(f"{len(rep.tables['tornado']) // 6 + len(rep.tables['optima']) // 6} grid evaluations per basis and "
          f"point in {seconds:.1f} s (figures included)")


if __name__ == "__main__":
    main()
