"""`roofline optimize`: an Optuna search over a sweep file's space (see roofline.search)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from roofline._paths import check_writable
from roofline.cli._common import (
    DatasheetOpt,
    FileFrameworkOpt,
    check_workers,
    echo_err,
    interrupted,
    model_caption,
    print_table,
    user_errors,
    with_model_choice,
)
from roofline.cli._progress import LazyProgress
from roofline.edge import edge_warnings

if TYPE_CHECKING:
    from roofline.search import SearchOptions, SearchResult
    from roofline.sweepfile import SweepSpec

app = typer.Typer()

#: Metrics shown in the ranked table after the searched parameters (objective metrics first).
SHOW_METRICS = ["tok_s_per_kusd", "throughput_tok_s", "system_cost_usd", "tpot_ms", "ttft_ms",
                "prefetch_speedup", "decode_bound"]


@app.command("optimize")
@user_errors
def optimize_command(
    file: Annotated[Path, typer.Argument(help="Sweep file (YAML) whose sweep: parameters span the search space.")],
    trials: Annotated[int | None, typer.Option("--trials", "-n", min=1,
                      help="Complete trials the study should have (default: the file's search.trials, else 200). "
                           "Running the command again continues up to this number.")] = None,
    storage: Annotated[str | None, typer.Option(
        "--storage", help="Study database URL, e.g. postgresql+psycopg2://user:pw@host/db "
                          "(default: sqlite:///OUT/study.db).")] = None,
    study: Annotated[str | None, typer.Option("--study", help="Study name (default: the sweep's name).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", min=0, help="Sampler seed; worker i uses seed + i.")] = None,
    sampler: Annotated[str | None, typer.Option(
        "--sampler", help="tpe, random, cmaes, nsgaii or qmc (default: tpe; nsgaii for multi-objective).")] = None,
    workers: Annotated[int, typer.Option("--workers", "-w", min=1,
                                         help="Local worker processes on the study.")] = 1,
    batch_size: Annotated[int | None, typer.Option("--batch-size", min=1,
                                                   help="Trials asked and evaluated together (default 16).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o",
                                             help="Output folder (default: runs/search/<sweep name>).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Delete the study and its outputs and start over.")] = False,
    top: Annotated[int, typer.Option(min=1, help="Rows in the ranked table.")] = 10,
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Write HTML and PNG plots.")] = True,
    status: Annotated[bool, typer.Option("--status", help="Say whether the search in --out is running, "
                                                          "interrupted or done, and exit.")] = False,
    report: Annotated[bool, typer.Option("--report", help="Then write OUT/report.html (see roofline report).")] = False,
    datasheet: DatasheetOpt = False,
    framework: FileFrameworkOpt = None,
) -> None:
    """Search a sweep file's space with Optuna and rank configurations by its objective.

    Single objective by default (the file's objective:, e.g. maximize tok_s_per_kusd); multi-objective over the file's pareto: metrics with search: {multi_objective: true}. Constraints (memory fit, latency and cost limits) are Optuna constraints: infeasible configurations are never ranked.

    The study lives in a database (SQLite in --out by default): the same command again resumes it, and several machines can share one PostgreSQL study (--storage). See docs/search.md.

    Example: roofline optimize sweeps/preserve_search.yaml --trials 300 --seed 0
    """
    from roofline.search import run_search, search_options
    from roofline.sweepfile import load_sweep

    check_workers(workers)
    spec = with_model_choice(load_sweep(file), datasheet, framework)
    out = check_writable(out if out is not None else Path("runs/search") / spec.name, folder=True)
    if status:
        from roofline.search import search_status

        typer.echo(search_status(out)[1])
        return
    options = search_options(spec, trials=trials, sampler=sampler, seed=seed, batch_size=batch_size)
    bar = LazyProgress(f"optimize {study or spec.name}", "trials")
    skipped: list[str] = []

    def write_plots(result: SearchResult, record: Any) -> list[Path]:
        bar.close()
        if not (plots and result.complete):
            return []
        written, reasons = _search_plots(spec, options, result, record)
        skipped.extend(reasons)
        return written

    try:
        result = run_search(spec, out, options=options, storage=storage, study_name=study, workers=workers,
                            force=force, top=top, progress=bar, then=write_plots)
    except KeyboardInterrupt:
        bar.close()
        where = f"in {out}" if storage is None else "in --storage"
        raise interrupted(f"the study {where} keeps every finished trial; run the same command again to resume "
                          "it") from None
    finally:
        bar.close()
    for note in result.notes:
        echo_err(f"note: {note}")
    for warning in edge_warnings(spec.parameters, result.best):
        echo_err(f"note: {warning}")  # widen the range: the optimum may lie outside it
    _print_ranking(spec, options, result, top)
    for reason in skipped:
        echo_err(f"plot skipped: {reason}")
    typer.echo("wrote " + ", ".join(str(f) for f in result.files))
    typer.echo(f"dashboard: optuna-dashboard {result.storage}")
    if report:
        from roofline.cli.report import report_after_run
        report_after_run(out)


def _print_ranking(spec: SweepSpec, options: SearchOptions, result: SearchResult, top: int) -> None:
    from roofline.search import search_space

    rows = result.ranked
    if not rows:
        return
    params = [p for p in search_space(spec).distributions if p in rows[0]]
    metrics = list(dict.fromkeys([m for m in result.objective.metrics] + SHOW_METRICS))
    cols = ["trial"] + params + [m for m in metrics if m in rows[0]]
    feasible = int(result.trials["feasible"].sum())
    if result.objective.multi:
        shown = f"the first {top} of " if len(rows) > top else ""
        title = (f"{spec.name}: Pareto set, {shown}{len(rows)} configurations ("
                 + ", ".join(f"{d} {m}" for d, m in zip(result.objective.directions, result.objective.metrics))
                 + "; all in best.csv)")
        rows = rows[:top]
    else:
        (direction, metric) = spec.objective
        title = f"{spec.name}: best {len(rows)} distinct configurations by {metric} ({direction})"
    counts = ", ".join(f"{v} {k.lower()}" for k, v in sorted(result.counts.items()))
    caption = (f"study {result.study_name!r}: {counts}; {feasible} feasible; sampler {options.sampler_name}; "
               f"{result.new_trials} new trials in {result.seconds:.1f} s"
               + (f" ({result.ms_per_trial:.1f} ms/trial)" if result.new_trials else "")
               + "\ninfeasible configurations (constraints: "
               + ", ".join(f"{k}={v}" for k, v in spec.constraints.items()) + ") are never ranked\n"
               + model_caption(spec))
    print_table(title, cols, [[r.get("number") if c == "trial" else r.get(c) for c in cols] for r in rows],
                caption=caption)


def _search_plots(spec: SweepSpec, options: SearchOptions, result: SearchResult,
                  record: Any) -> tuple[list[Path], list[str]]:
    """Pareto front, optimization history, parameter importances and the best configuration's
    latency breakdown next to the base device, as HTML and PNG in OUT/plots; ``record`` lists
    each file in the folder's manifest before it is written."""
    import optuna
    import optuna.visualization as ov

    from roofline import plots

    assert result.out_dir is not None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = result.out_dir / "plots"
    written: list[Path] = []
    skipped: list[str] = []
    df = result.trials
    feasible = df[df["feasible"]]
    objective = result.objective
    metric0, direction0 = objective.metrics[0], objective.directions[0]
    target = (lambda t: t.values[0]) if objective.multi else None
    target_name = metric0
    with plots.FigureWriter() as figures:
        writer = _Recording(figures, record)
        (dx, x), (dy, y) = spec.pareto[0], spec.pareto[1]
        if len(feasible):
            fig = plots.plot_pareto_front(
                feasible, x, y, x_better="min" if dx == "minimize" else "max",
                y_better="min" if dy == "minimize" else "max",
                title=f"{spec.name}: feasible trials and their Pareto front ({dx} {x}, {dy} {y})")
            written += writer.write(fig, out / "pareto")
        else:
            skipped.append("pareto: no feasible trial")
        fig = ov.plot_optimization_history(result.study, target=target, target_name=target_name)
        fig.update_layout(title=f"{spec.name}: optimization history ({direction0} {metric0})")
        written += writer.write(fig, out / "optimization_history")
        reason = _importance_guard(feasible, list(_space(spec).distributions), metric0 if objective.multi else "value")
        if reason is None:
            try:
                written += _importance_plots(spec, result, feasible, writer, out)
            except (ValueError, RuntimeError, ZeroDivisionError, IndexError) as e:
                skipped.append(f"param_importances: {e}")
        else:
            skipped.append(f"param_importances: {reason}")
        if result.best is not None:
            written += _breakdown_plots(spec, result.best, writer, out)
    return written, skipped


class _Recording:
    """A FigureWriter that lists each figure's files in the run's manifest before writing them."""

    def __init__(self, writer: Any, record: Any) -> None:
        self.writer, self.record = writer, record

    def write(self, fig: Any, stem: Path) -> list[Path]:
        self.record(*self.writer.targets(stem))
        return self.writer.write(fig, stem)


def _importance_plots(spec: SweepSpec, result: SearchResult, feasible: Any, writer: Any, out: Path) -> list[Path]:
    """PED-ANOVA importances over the feasible trials (one figure per objective); PED-ANOVA
    ranks what makes a target low, so maximized metrics are negated."""
    import warnings

    import optuna
    import optuna.visualization as ov

    objective = result.objective
    sub = optuna.create_study(directions=list(objective.directions))
    numbers = set(feasible["number"])
    sub.add_trials([t for t in result.study.get_trials(deepcopy=False) if t.number in numbers])
    written: list[Path] = []
    for i, (metric, direction) in enumerate(zip(objective.metrics, objective.directions)):
        sign = -1.0 if direction == "maximize" else 1.0
        target = None if not objective.multi else (lambda t, i=i, sign=sign: sign * t.values[i])
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="PedAnovaImportanceEvaluator computes the importances")
            fig = ov.plot_param_importances(sub, evaluator=optuna.importance.PedAnovaImportanceEvaluator(),
                                            target=target, target_name=metric)
        fig.update_layout(title=f"{spec.name}: parameter importances for {direction} {metric} "
                                f"(PED-ANOVA over the feasible trials)")
        stem = "param_importances" if not objective.multi else f"param_importances_{metric}"
        written += writer.write(fig, out / stem)
    return written


def _space(spec: SweepSpec) -> Any:
    from roofline.search import search_space

    return search_space(spec)


def _importance_guard(feasible: Any, params: list[str], value_col: str) -> str | None:
    """Why parameter importances cannot be computed, or None."""
    if len(feasible) < 2:
        return f"needs at least 2 feasible trials, have {len(feasible)}"
    if value_col in feasible and feasible[value_col].nunique() < 2:
        return "every feasible trial has the same objective value"
    if not any(p in feasible and feasible[p].nunique() > 1 for p in params):
        return "no searched parameter varies among the feasible trials"
    return None


def _breakdown_plots(spec: SweepSpec, best: dict[str, Any], writer: Any, out: Path) -> list[Path]:
    from roofline import plots
    from roofline.predict import predict
    from roofline.search import predict_kwargs

    kw = predict_kwargs(best, _space(spec))
    kw |= {"datasheet": spec.model_choice.datasheet, "framework": spec.model_choice.framework}
    p_best = predict(best["model"], best["hardware"], **kw)
    base_kw = {k: v for k, v in kw.items() if k in ("batch", "input_len", "output_len", "tp", "pp", "dp", "ep",
                                                     "dtype", "kv_dtype", "check_memory", "datasheet", "framework")}
    p_base = predict(best["model"], best["hardware"], **base_kw)
    base_label = f"base {best['hardware']} (prefetch {'on' if p_base.prefetch else 'off'})"
    best_label = f"best (trial {best['number']}, prefetch {'on' if p_best.prefetch else 'off'})"
    written = writer.write(plots.plot_latency_breakdown(
        p_best, title=f"{spec.name}: latency breakdown of the best configuration (trial {best['number']})"),
        out / "best_breakdown")
    for phase in ("decode", "prefill"):
        fig = plots.plot_breakdown_comparison({best_label: p_best, base_label: p_base},
                                              phase=phase,
                                              title=f"{spec.name}: {phase} time, best configuration vs base device")
        written += writer.write(fig, out / f"best_vs_base_{phase}")
    return written
