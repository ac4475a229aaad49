"""The design-space answer of docs/dse_l2.md: optima of L2 size, HBM bandwidth and link speed under
perf per manufacturing cost, per price and per TCO dollar (static batch, prefetch on) for the
PRESERVE set-up and two GPU nodes, and the tornado charts of how far each optimum moves when each
unsourced estimate moves over its plausible range.

    .venv/bin/python benchmarks/dse_objectives.py [OUT_DIR]   # default runs/dse_objectives

Writes optima.csv, tornado.csv and tornado_<setup>.html/.png into OUT_DIR and prints the tables
and the wall time.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from roofline.cost import fit_margin, load_cost_parameters
from roofline.plots import FigureWriter
from roofline.reproduce import DSE_SETUPS, dse_objectives, tornado_figure


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/dse_objectives")
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    optima, tornado = dse_objectives()
    seconds = time.perf_counter() - start
    optima.to_csv(out / "optima.csv", index=False)
    tornado.to_csv(out / "tornado.csv", index=False)
    fit = fit_margin(load_cost_parameters())
    print(f"margin fit: {fit.margin:.3f} over {', '.join(fit.devices)}; held-out errors "
          + ", ".join(f"{d} {e:+.1%}" for d, e in zip(fit.devices, fit.held_out_error))
          + f"; mean |error| {fit.mean_abs_held_out_error:.1%}")
    print(optima.to_string(index=False))
    moves = tornado.merge(optima, on=["setup", "objective"], suffixes=("", "_default"))
    for knob in ("l2_capacity_MiB", "hbm_bandwidth_GBps", "link_bandwidth_GBps"):
        moves[f"{knob}_moved"] = moves[knob] != moves[f"{knob}_default"]
    print(moves[moves[[c for c in moves if c.endswith("_moved")]].any(axis=1)][
        ["setup", "objective", "parameter", "end", "parameter_value", "l2_capacity_MiB", "hbm_bandwidth_GBps",
         "link_bandwidth_GBps"]].to_string(index=False))
    with FigureWriter(width=1500, height=980) as writer:
        for setup in DSE_SETUPS:
            fig = tornado_figure(optima, tornado, setup)
            stem = out / ("tornado_" + setup.split()[0].replace("-", "_"))
            for path in writer.write(fig, stem):
                print("wrote", path)
    print(f"{len(tornado) // 3 + len(optima) // 3} grid evaluations per basis in {seconds:.1f} s")


if __name__ == "__main__":
    main()
