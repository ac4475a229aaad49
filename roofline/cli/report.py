"""`roofline report`: an interactive HTML report of a sweep or search folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from roofline.cli._common import user_errors

app = typer.Typer()


def report_after_run(run_dir: Path) -> None:
    """The hook behind `--report` on `sweep` and `optimize`: the same report with the default
    sizes. The run has just rewritten every output of its folder, the report among them."""
    from roofline.report import write_report

    result = write_report(run_dir, force=True)
    _echo(result)


def _echo(result) -> None:
    c = result.counts
    typer.echo(f"wrote {result.path} ({result.size_bytes / 2**20:.1f} MiB; {result.embedded_rows:,} of "
               f"{result.total_rows:,} rows embedded: front {c['pareto_front']}, top {c['top']}, "
               f"best per value {c['best_per_value']}, sample {c['sample']}; {c['details']} breakdowns)")
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)


@app.command("report")
@user_errors
def report_command(
    run_dir: Annotated[Path, typer.Argument(help="Output folder of `roofline sweep` or `roofline optimize`.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="HTML file (default: RUN_DIR/report.html).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing report.")] = False,
    top: Annotated[int, typer.Option(min=1, help="Best rows embedded for the table.")] = 100,
    sample: Annotated[int, typer.Option(min=0, help="Rows of the stratified sample embedded (at most).")] = 10_000,
    details: Annotated[int, typer.Option(min=0, help="Points whose latency breakdown is computed (front first).")] = 600,
) -> None:
    """One self-contained HTML file to explore a run: Pareto front, filters, per-parameter plots,
    best configurations, side-by-side comparison, breakdowns and assumptions. Opens offline.

    Example: roofline report runs/quickstart
    """
    from roofline.report import write_report

    _echo(write_report(run_dir, out=out, force=force, top=top, sample=sample, details=details))
