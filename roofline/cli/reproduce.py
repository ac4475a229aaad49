"""`roofline reproduce`: rerun the PRESERVE paper's experiments (speedup grid, L2 design-space
exploration) from the sweep files under sweeps/ and write tables and plots."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from roofline._paths import check_writable
from roofline.cli._common import echo_err, print_table, user_errors

app = typer.Typer()


class Experiment(str, Enum):
    preserve = "preserve"
    dse_l2 = "dse-l2"
    dse_objectives = "dse-objectives"


@app.command("reproduce")
@user_errors
def reproduce_command(
    experiment: Annotated[Experiment, typer.Argument(
        help="preserve: e2e prefetch speedup grid (8x Ascend 910B and the GPUs); "
             "dse-l2: performance per cost against L2 size on the 910B; dse-objectives: optima of L2, "
             "HBM bandwidth and link speed under three cost objectives, static batch and serving, "
             "with tornado charts.")],
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Output folder (default: runs/reproduce/EXPERIMENT).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Write into an existing, non-empty --out.")] = False,
    devices: Annotated[list[str] | None, typer.Option(
        "--devices", "-d", help="preserve only: devices to run (repeat, or comma-separated); default all.")] = None,
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Write HTML (and PNG) plots.")] = True,
    sensitivity: Annotated[bool, typer.Option(
        "--sensitivity/--no-sensitivity", help="Also run the sensitivity tables.")] = True,
) -> None:
    """Reproduce the PRESERVE paper's experiments (arXiv 2501.08192) with this model.

    Example: roofline reproduce preserve --devices ascend-910b --out runs/preserve
    """
    from roofline import reproduce as rp
    from roofline.exceptions import SpecError

    target = check_writable(out or Path("runs/reproduce") / experiment.value, folder=True)
    if experiment is Experiment.preserve:
        result = rp.reproduce_preserve(target, force=force, devices=devices, plots=plots,
                                       sensitivity=sensitivity, progress=echo_err)
        _print_preserve(result)
    elif devices:
        raise SpecError(f"--devices applies to `reproduce preserve` only ({experiment.value} runs fixed set-ups)")
    elif experiment is Experiment.dse_l2:
        result = rp.reproduce_dse_l2(target, force=force, plots=plots, sensitivity=sensitivity,
                                     progress=echo_err)
        _print_dse(result)
    else:
        result = rp.reproduce_dse_objectives(target, force=force, plots=plots, progress=echo_err)
        _print_objectives(result)
    for message in result.warnings:
        echo_err(f"warning: {message}")
    typer.echo(f"wrote {len(result.files)} files to {result.out_dir} (report: {result.out_dir / 'report.md'})")


def _print_preserve(result) -> None:
    from roofline.reproduce import MAIN_BATCH, MAIN_SEQUENCE, PAPER

    t = result.tables["speedups"]
    main = t[(t["batch"] == MAIN_BATCH) & (t["sequence"] == MAIN_SEQUENCE)]
    print_table(f"e2e prefetch speedup, batch {MAIN_BATCH}, {MAIN_SEQUENCE // 1024}K sequence (paper: "
                f"{PAPER['speedup_e2e_min']}x-{PAPER['speedup_e2e_max']}x)",
                ["hardware", "model", "fits", "TPOT base ms", "TPOT ms", "e2e speedup", "coll/prefetch",
                 "limited by"],
                [[r.hardware, r.model_label, r.fits, r.baseline_tpot_ms, r.tpot_ms, r.prefetch_speedup,
                  r.collective_to_prefetch_ratio, r.limited_by] for r in main.itertuples()])
    rows = []
    for hw, s in result.summary["devices"].items():
        if s.get("fit"):
            b = s["best"]
            rows.append([hw, s["dtype"], s["fit"], s["does_not_fit"], s["speedup_min"], s["speedup_max"],
                         f"{b['model_label']} b{b['batch']} {b['sequence'] // 1024}K"])
    print_table("e2e speedup over the grid (configurations that fit)",
                ["hardware", "dtype", "fit", "do not fit", "min", "max", "largest at"], rows)


def _print_dse(result) -> None:
    from roofline.reproduce import PAPER

    o = result.tables["optima"]
    print_table("perf/cost-optimal L2 (MiB) per model, 8x Ascend 910B, batch 4, 16K",
                ["model", "L2 without", "L2 with", "gain", "gain vs 192 MiB"],
                [[r.model_label, r.l2_best_without_MiB, r.l2_best_with_MiB, r.gain, r.gain_vs_stock]
                 for r in o.itertuples()])
    a = result.summary["all_models"]
    typer.echo(f"all models: optimum {a['l2_best_without_MiB']:g} MiB without prefetch, "
               f"{a['l2_best_with_MiB']:g} MiB with it, gain {a['gain']:.2f}x (paper: "
               f"{PAPER['l2_optimum_without_prefetch_MB']} MB, {PAPER['l2_optimum_with_prefetch_MB']} MB, "
               f"{PAPER['perf_per_cost_gain']}x)")


def _print_objectives(result) -> None:
    o = result.tables["optima"]
    print_table("optima of L2, HBM bandwidth and link speed (prefetch on)",
                ["set-up", "point", "objective", "L2 MiB", "HBM GB/s", "link GB/s", "value", "gain vs stock"],
                [[r.setup, r.point, r.objective, r.l2_capacity_MiB, r.hbm_bandwidth_GBps, r.link_bandwidth_GBps,
                  r.value, r.gain_vs_stock] for r in o.itertuples()])
