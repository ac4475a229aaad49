"""`roofline sweep` (grid sweeps from a sweep file) and `roofline pareto` (fronts of a results file)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from roofline._specfile import printable
from roofline.cli._common import (
    DatasheetOpt,
    FileFrameworkOpt,
    check_output,
    check_workers,
    echo_err,
    fail,
    interrupted,
    model_caption,
    print_table,
    user_errors,
    with_model_choice,
)
from roofline.cli._progress import LazyProgress
from roofline.edge import edge_warnings
from roofline.registry import headline_columns

app = typer.Typer()

#: ``--format`` values (``roofline.sweep.OUTPUT_FORMATS``; a Literal keeps the CLI's import light).
OutputFormat = Literal["parquet", "parquet-dataset"]
#: File types ``roofline pareto --out`` writes, chosen by the file's suffix.
FRONT_SUFFIXES = (".csv", ".parquet", ".json")

#: Columns of the ranked table: the headline parameters (roofline.registry), then the static batch's metrics.
SHOW = [*headline_columns(), "ttft_ms", "tpot_ms", "throughput_tok_s", "system_cost_usd", "tok_s_per_kusd",
        "decode_bound"]
#: A sweep with a serving: block ranks at the serving operating point: show that, not the static batch.
SERVING_SHOW = [*headline_columns(serving=True), "prefill_instances", "decode_instances", "serving_ttft_ms",
                "serving_tpot_ms", "goodput_tok_s", "system_cost_usd", "goodput_tok_s_per_kusd", "slo_max_concurrency"]


def _columns(rows: list[dict[str, Any]], extra: list[str], *, serving: bool = False) -> list[str]:
    if not rows:
        return []
    cols = [c for c in (SERVING_SHOW if serving else SHOW) + extra if c in rows[0]]
    pools = ("prefill_instances", "decode_instances")  # only a disaggregated sweep has them non-zero
    if not any(r.get(c) for r in rows for c in pools):
        cols = [c for c in cols if c not in pools]
    return list(dict.fromkeys(cols))


@app.command("sweep")
@user_errors
def sweep_command(
    file: Annotated[Path, typer.Argument(help="Sweep file (YAML); see sweeps/ for examples.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder for results and plots.")] = Path("runs/sweep"),
    force: Annotated[bool, typer.Option(
        "--force", help="Replace an earlier sweep's outputs in --out (only the files it wrote).")] = False,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue an interrupted sweep in --out (refused if its inputs differ).")] = False,
    workers: Annotated[int | None, typer.Option(min=1, help="Worker processes (default: CPU count).")] = None,
    chunk_size: Annotated[int, typer.Option(min=1, help="Configurations per vectorized chunk.")] = 16384,
    csv: Annotated[bool | None, typer.Option("--csv/--no-csv", help="Also write results.csv (default: up to 2M rows).")] = None,
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Write HTML (and PNG) plots.")] = True,
    top: Annotated[int, typer.Option(min=1, help="Rows in the ranked table.")] = 10,
    report: Annotated[bool, typer.Option("--report", help="Then write OUT/report.html (see roofline report).")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Run a sweep above 50M configurations or 5 GB of results.")] = False,
    scheduler: Annotated[str | None, typer.Option(
        help="Run the chunks on a Dask cluster: its scheduler's address, e.g. tcp://HOST:8786.")] = None,
    output_format: Annotated[OutputFormat, typer.Option(
        "--format", help="parquet: one results.parquet; parquet-dataset: results/ with one file per chunk, "
                         "never merged (for sweeps of many millions of rows; no CSV).")] = "parquet",
    datasheet: DatasheetOpt = False,
    framework: FileFrameworkOpt = None,
) -> None:
    """Evaluate every configuration of a sweep file; write Parquet/CSV, a ranked table and plots.

    Example: roofline sweep sweeps/quickstart.yaml --out runs/quickstart
    """
    if scheduler is not None:
        from roofline._cluster import check_address

        if workers is not None:
            raise fail("--workers does not apply with --scheduler: the cluster's workers run the chunks")
        check_address(scheduler)
    check_workers(workers)
    if resume and force:  # --force would win and delete the chunks --resume meant to keep
        raise fail("give one of --resume (continue the sweep in --out) and --force (start it over)")
    if output_format == "parquet-dataset" and csv:
        raise fail("--csv does not apply to --format parquet-dataset (a CSV of that size helps nobody); "
                   "read results/ with pandas.read_parquet or DuckDB")
    from roofline._paths import check_writable
    from roofline.sweep import check_out_dir, measure_budget, run_sweep
    from roofline.sweepfile import check_budget, load_sweep

    spec = with_model_choice(load_sweep(file), datasheet, framework)
    check_writable(out, folder=True)
    check_out_dir(out, force=force, resume=resume)
    budget = measure_budget(spec, workers=workers, chunk_size=chunk_size)
    check_budget(budget, yes=yes)
    then = (lambda result, record: _sweep_plots(spec, result, record)) if plots else None
    # the size line waits for the bar, which appears once the output folder is claimed
    bar = LazyProgress(f"sweep {spec.name}", "configs", remaining=True,
                       preamble=f"sweep {spec.name}: {budget.summary()}")
    try:
        result = run_sweep(spec, out, force=force, resume=resume, workers=workers, chunk_size=chunk_size,
                           csv=csv, top=top, progress=bar, then=then, scheduler=scheduler,
                           output=output_format)
    except KeyboardInterrupt:
        bar.close()
        from roofline._runfiles import MANIFEST_FILE

        if not (out / MANIFEST_FILE).exists():  # stopped before the folder was claimed
            raise interrupted(f"nothing was written to {out}") from None
        raise interrupted(f"the finished chunks are kept in {out}; run the same command with --resume to "
                          "continue") from None
    finally:
        bar.close()
    for reason in result.skipped:
        echo_err(f"skipped: {reason}")
    for warning in edge_warnings(spec.parameters, result.best[0] if result.best else None):
        echo_err(f"note: {warning}")  # widen the range: the optimum may lie outside it
    no_cost = sorted({r["hardware"] for r in result.best if r["system_cost_usd"] != r["system_cost_usd"]})
    if no_cost:
        echo_err(f"note: {', '.join(no_cost)} has no die: block, so cost and performance per cost are unknown "
                 f"(add die: process_node, logic_area_mm2, hbm_stacks to the spec)")
    direction, metric = spec.objective
    rows = result.best
    if rows:
        cols = _columns(rows, [metric], serving=spec.serving is not None)
        shown = list({tuple(map(str, row)): row for row in ([r[c] for c in cols] for r in rows)}.values())  # no repeats
        print_table(f"{spec.name}: best {len(rows)} of {result.feasible:,} feasible ({result.rows:,} evaluated, "
                    f"{result.configs_per_second:,.0f} configs/s) by {metric} ({direction})", cols, shown,
                    caption=model_caption(spec))
    elif result.rows:  # an empty table said nothing: name what the rows break
        from roofline._dataset import DATASET_DIR
        from roofline.sweep import unmet_constraints

        table = result.out_dir / "results.parquet"
        table = table if table.exists() else result.out_dir / DATASET_DIR
        broken = ", ".join(f"{n:,} break {label}" for label, n in unmet_constraints(spec, table))
        echo_err(f"note: none of the {result.rows:,} configurations is feasible: {broken}; every row is in "
                 f"{table} (column feasible)")
    typer.echo("wrote " + ", ".join(str(f) for f in result.files))
    if report:
        from roofline.cli.report import report_after_run
        report_after_run(result.out_dir)


def _sweep_plots(spec, result, record) -> list[Path]:
    """The Pareto front and performance per cost against L2 size, into OUT/plots; ``record``
    lists each file in the folder's manifest before it is written."""
    import pandas as pd

    from roofline import plots
    from roofline._dataset import DATASET_DIR, sample_rows
    from roofline._testhooks import kill_point
    from roofline.plots import axis_label

    out = result.out_dir / "plots"
    written: list[Path] = []
    pareto = pd.DataFrame(result.pareto)
    (dx, x), (dy, y) = spec.pareto[0], spec.pareto[1]
    results = next(p for p in (result.out_dir / "results.parquet", result.out_dir / DATASET_DIR) if p.exists())
    sample = sample_rows(results, 200_000).to_pandas()  # all rows up to 200,000
    sample = sample[sample["feasible"]]
    with plots.FigureWriter() as writer:
        fig = plots.plot_pareto_front(
            pd.concat([sample, pareto], ignore_index=True) if len(pareto) else sample, x, y,
            x_better=dx[:3], y_better=dy[:3], title=f"{spec.name}: Pareto front ({dx} {x}, {dy} {y})")
        record(*writer.targets(out / "pareto"))
        written += writer.write(fig, out / "pareto")
        kill_point("plot")
        if "l2_capacity_MiB" in sample.columns and sample["l2_capacity_MiB"].nunique() > 1:
            table, metric, better, series = _per_cost_series(spec, sample)
            fig = plots.plot_metric_vs_parameter(
                table, "l2_capacity_MiB", metric, series=series, reduce=better, better=better,
                group="model" if sample["model"].nunique() > 1 else None,
                title=f"{spec.name}: {axis_label(metric).split(' (')[0]} against L2 size "
                      "(best over the other parameters)")
            record(*writer.targets(out / "perf_per_cost_vs_l2"))
            written += writer.write(fig, out / "perf_per_cost_vs_l2")
    return written


def _per_cost_series(spec, sample):  # -> (table, metric, "max" or "min", {label: column})
    """What the L2 plot draws: static performance per cost with and without prefetching, or, for a
    sweep with a serving: block, its objective when that is a serving cost metric (else goodput per
    kUSD), split by the swept ``prefetch`` column (its rows without prefetching are the
    baseline of the rows with it). Returns the table to plot, the metric, its better direction and
    the series."""
    from roofline.metrics import METRICS

    objective = spec.objective[1]
    if spec.serving is None:
        return sample, "tok_s_per_kusd", "max", {"with prefetch": "tok_s_per_kusd", "without prefetch": "baseline_tok_s_per_kusd"}
    per_cost = METRICS[objective].stage == "serving" and "usd" in objective
    metric = objective if per_cost else "goodput_tok_s_per_kusd"
    better = METRICS[metric].direction
    if "prefetch" not in sample.columns or sample["prefetch"].nunique() < 2:
        return sample, metric, better, {METRICS[metric].label: metric}
    on = sample["prefetch"].astype(bool)
    table = sample.assign(**{"baseline_" + metric: sample[metric].where(~on),  # NaN rows are skipped
                             metric: sample[metric].where(on)})
    return table, metric, better, {"with prefetch": metric, "without prefetch": "baseline_" + metric}


def _read_results(path: Path) -> Any:
    """A results table (Parquet by suffix, else CSV); a file that is not one is a one-line error."""
    import pandas as pd

    try:
        return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except (OSError, ValueError, UnicodeDecodeError) as e:  # pyarrow's and pandas' parse errors are ValueErrors
        kind = "Parquet" if path.suffix == ".parquet" else "CSV (UTF-8)"
        raise fail(f"{path}: not a readable {kind} results table ({printable(str(e).splitlines()[0])[:120]})") from None


@app.command("pareto")
@user_errors
def pareto_command(
    results: Annotated[Path, typer.Argument(help="A results file (Parquet or CSV) from `roofline sweep`.")],
    minimize: Annotated[list[str] | None, typer.Option("--minimize", help="Metric to minimize (repeat).")] = None,
    maximize: Annotated[list[str] | None, typer.Option("--maximize", help="Metric to maximize (repeat).")] = None,
    feasible_only: Annotated[bool, typer.Option("--feasible-only/--all", help="Ignore rows that break constraints.")] = True,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the front (CSV, Parquet or JSON by suffix).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --out and --plot files.")] = False,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a Pareto plot (HTML and PNG) with this stem; a bare name goes next to RESULTS.")] = None,
) -> None:
    """The non-dominated configurations for two or three metrics.

    Example: roofline pareto runs/quickstart/results.parquet --minimize system_cost_usd --maximize throughput_tok_s
    """
    import numpy as np
    import pandas as pd

    from roofline.pareto import pareto_mask

    if not results.is_file():
        raise fail(f"{results}: results file not found" if not results.exists() else
                   f"{results}: is a folder; give its results.parquet or results.csv")
    from roofline._paths import check_writable

    if out is not None:
        if out.suffix not in FRONT_SUFFIXES:
            raise fail(f"--out {out}: the front is written as {', '.join(FRONT_SUFFIXES)} by the file's suffix; "
                       f"{out.suffix or 'no suffix'} is not one of them")
        check_writable(out, create_parents=False)
        check_output(out, force)
    if plot is not None:
        from roofline.plots import figure_targets

        plot = results.parent / plot if plot.parent == Path() else plot  # a bare name goes next to the input
        for target in figure_targets(plot):  # PNG as well as HTML
            check_writable(target)
            check_output(target, force)
    df = _read_results(results)
    pairs = [(m, False) for m in minimize or []] + [(m, True) for m in maximize or []]
    if not 2 <= len(pairs) <= 3:
        raise fail(f"give 2 or 3 metrics with --minimize/--maximize, got {len(pairs)}")
    for m, _ in pairs:
        numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])]
        if m not in numeric:
            what = "not a numeric column" if m in df.columns else "no column"
            raise fail(f"{results}: {what} {m!r}; numeric columns: {', '.join(numeric)}")
    if feasible_only and "feasible" in df.columns:
        df = df[df["feasible"].astype(bool)]
    mask = pareto_mask(np.column_stack([df[m].to_numpy(float) for m, _ in pairs]), [mx for _, mx in pairs])
    front = df[mask].sort_values(pairs[0][0])
    # a serving sweep's results are ranked at its operating point: show the serving columns as `sweep` does
    shown = _columns(front.head(50).to_dict(orient="records"), [], serving="goodput_tok_s" in front.columns)
    cols = [c for c in shown if c not in {m for m, _ in pairs}] + [m for m, _ in pairs]
    print_table(f"Pareto front: {len(front)} of {len(df)} rows", cols,
                front[cols].drop_duplicates().head(50).values.tolist())
    if out is not None:
        from roofline._runfiles import replacing

        with replacing(out) as tmp:  # never a half-written file in place of the old one
            if out.suffix == ".parquet":
                front.to_parquet(tmp)
            elif out.suffix == ".json":
                front.to_json(tmp, orient="records", indent=2)
            else:  # .csv
                front.to_csv(tmp, index=False)
    if plot is not None:
        from roofline import plots

        (x, x_max), (y, y_max) = pairs[0], pairs[1]
        fig = plots.plot_pareto_front(df, x, y, front_mask=mask, x_better="max" if x_max else "min",
                                      y_better="max" if y_max else "min")
        for path in plots.save_figure(fig, plot):
            typer.echo(f"wrote {path}")
