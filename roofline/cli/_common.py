"""What every command shares: error handling, output files, terminal tables."""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable, Sequence
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from roofline.exceptions import RooflineError
from roofline.metrics import METRICS, metric_labels
from roofline.registry import parameter_short_labels
from roofline.workload import FRAMEWORKS

F = TypeVar("F", bound=Callable[..., Any])

#: Set by ``roofline --debug``: show tracebacks instead of one-line errors.
DEBUG = {"on": False}


def fail(message: str) -> typer.Exit:
    """Print a one-line error to stderr; return the Exit(2) to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


def interrupted(message: str) -> typer.Exit:
    """Ctrl-C: one line on stderr saying what was kept and how to continue; return the Exit(130)
    to raise (128 + SIGINT, the code a shell gives a command it interrupted)."""
    typer.echo(f"interrupted: {message}", err=True)
    return typer.Exit(code=130)


def user_errors(func: F) -> F:
    """Turn RooflineError (bad spec, infeasible config) and a file the system refuses (OSError with a
    file name) into one line on stderr and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except RooflineError as e:
            if DEBUG["on"]:
                raise
            raise fail(str(e)) from None
        except OSError as e:  # the system refused a file (a full disk, a read-only or special folder)
            if DEBUG["on"] or isinstance(e, BrokenPipeError) or e.filename is None:
                raise
            from roofline._runfiles import TMP_SUFFIX

            raise fail(f"{str(e.filename).removesuffix(TMP_SUFFIX)}: {e.strerror or e}") from None

    return wrapper  # type: ignore[return-value]


#: Which model a command predicts with (roofline.fitted): every command that predicts takes both.
Framework = Enum("Framework", {name: name for name in FRAMEWORKS}, type=str)  # type: ignore[misc]
DatasheetOpt = Annotated[bool, typer.Option(
    "--datasheet", help="The raw datasheet roofline: the device spec as written, no calibrated profile, no fitted "
                        "overheads (default: the fitted model).")]
FrameworkOpt = Annotated[Framework, typer.Option(  # type: ignore[valid-type]
    help="Whose fitted software overheads the default model adds (any: fitted on every framework's rows).")]


FileFrameworkOpt = Annotated[Framework | None, typer.Option(  # type: ignore[valid-type]
    help="Whose fitted software overheads the default model adds (any: fitted on every framework's rows); "
         "default: the file's scenario: {framework: ...}, else any.")]


def model_choice(datasheet: bool, framework: Any) -> Any:
    """The --datasheet and --framework options as a roofline.fitted.ModelChoice."""
    from roofline.fitted import ModelChoice  # the engine's stages load when a command runs

    return ModelChoice(datasheet, str(getattr(framework, "value", framework)))


def with_model_choice(spec: Any, datasheet: bool, framework: Any) -> Any:
    """A sweep file's spec with --datasheet and --framework applied over its ``scenario:`` block
    (the choice is part of the sweep's fingerprint: a resumed run never mixes models)."""
    if not datasheet and framework is None:
        return spec
    import dataclasses

    given = spec.model_choice
    return dataclasses.replace(spec, model_choice=model_choice(
        datasheet or given.datasheet, given.framework if framework is None else framework))


def model_caption(spec: Any) -> str:
    """Which model predicted the rows, one line per distinct choice (roofline.fitted)."""
    from roofline.fitted import describe
    from roofline.sweep import model_provenance

    return "\n".join(dict.fromkeys(describe(p) for p in model_provenance(spec).values()))


def check_output(path: Path, force: bool) -> None:
    """Refuse to overwrite what a user wrote unless --force. A file about to be written inside a
    sweep's or search's folder joins its manifest (roofline._runfiles.record_in_run)."""
    if path.exists() and not force:
        raise fail(f"{path} exists; pass --force to overwrite it")
    from roofline._runfiles import record_in_run

    record_in_run(path)


#: Short headers for result columns (the files keep the full names with units): the hardware
#: parameters' (roofline.registry), then the metrics' (roofline.metrics).
LABELS = {**parameter_short_labels(), **metric_labels("short")}


def check_workers(workers: int | None) -> None:
    """``--workers`` at most four processes per CPU: each worker is a Python process of a few
    hundred MB, and ``--workers 100000`` spawned processes until the machine stalled."""
    import os

    limit = max(8, 4 * (os.cpu_count() or 1))
    if workers is not None and workers > limit:
        raise fail(f"--workers: at most {limit} on this machine (4 per CPU), got {workers}")


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *,
                caption: str | None = None) -> None:
    """A rich table on stdout."""
    from rich.console import Console
    from rich.table import Table

    # at least as wide as its title: a narrow table wrapped the title and its caption into a column
    table = Table(title=title, caption=caption, caption_justify="left", min_width=len(title) + 4)
    for i, col in enumerate(columns):
        table.add_column(LABELS.get(col, col), justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*[_fmt(v, col) for v, col in zip(row, columns)])
    Console(width=max(160, _width())).print(table)


def _width() -> int:
    import shutil

    return shutil.get_terminal_size((120, 24)).columns


def _fmt(value: Any, column: str = "") -> str:
    """A table cell by unit: whole numbers without decimals (an L2 of 48 MiB is "48"), dollars to
    the dollar with separators, other numbers to four significant digits, never in e-notation
    unless they are tiny."""
    import numpy as np  # here, not at the top: ``roofline --help`` never loads numpy

    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if not math.isfinite(value):
            return "-"
        if column in METRICS and METRICS[column].fmt:
            return format(value, METRICS[column].fmt)
        if column.endswith("_usd"):  # dollar columns that are not metrics (cost breakdowns)
            return f"{value:,.0f}"
        if value == int(value) and abs(value) < 1e15:
            return f"{int(value):,}"
        if 0 < abs(value) < 1e-3:
            return f"{value:.3g}"
        decimals = max(0, 3 - math.floor(math.log10(abs(value)))) if value else 0
        return f"{value:,.{decimals}f}"
    return str(value)


def echo_err(message: str) -> None:
    print(message, file=sys.stderr)
